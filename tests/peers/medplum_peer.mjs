// MLLP peers for the end-to-end tests, built on @medplum/hl7 (a client and a
// server we did not write).
//
//   node medplum_peer.mjs client HOST PORT FILE...   send each file's message, print "MSA-1 MSA-2" per ACK
//   node medplum_peer.mjs server PORT MODE LOG       answer per MODE (aa, ae, ar, silent) and append each
//                                                    message as a JSON line to LOG; prints "ready"
//   node medplum_peer.mjs forward PORT SINK_PORT     the benchmark's JS equivalent of a forwarding bot:
//                                                    ACK each message, then send it (MSH-5/MSH-6 rewritten)
//                                                    to 127.0.0.1:SINK_PORT; prints "ready"
import { appendFileSync, readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';
import { Hl7Client, Hl7Server } from '@medplum/hl7';

const [cmd, ...args] = process.argv.slice(2);

function field(msg, segment, index) {
  return msg.getSegment(segment)?.getField(index)?.toString() ?? '';
}

if (cmd === 'client') {
  const [host, port, ...files] = args;
  const client = new Hl7Client({ host, port: Number(port) });
  for (const file of files) {
    const msg = Hl7Message.parse(readFileSync(file, 'utf8').replaceAll('\n', '\r'));
    const ack = await client.sendAndWait(msg, { timeoutMs: 10000 });
    console.log(`${field(ack, 'MSA', 1)} ${field(ack, 'MSA', 2)}`);
  }
  await client.close();
} else if (cmd === 'server') {
  const [port, mode, log] = args;
  const server = new Hl7Server((connection) => {
    connection.addEventListener('message', ({ message }) => {
      appendFileSync(log, JSON.stringify({ control_id: field(message, 'MSH', 10), text: message.toString() }) + '\n');
      if (mode === 'silent') {
        return;
      }
      const code = { aa: 'AA', ae: 'AE', ar: 'AR' }[mode] ?? 'AA';
      connection.send(message.buildAck({ ackCode: code }));
    });
  });
  server.start(Number(port));
  console.log('ready');
} else if (cmd === 'forward') {
  const [port, sinkPort] = args;
  const sink = new Hl7Client({ host: '127.0.0.1', port: Number(sinkPort) });
  const server = new Hl7Server((connection) => {
    connection.addEventListener('message', ({ message }) => {
      connection.send(message.buildAck());
      const msh = message.getSegment('MSH');
      msh.setField(5, 'EHR');
      msh.setField(6, 'HOSPITAL');
      sink.sendAndWait(message).catch((err) => console.error(`forward failed: ${err}`));
    });
  });
  server.start(Number(port));
  console.log('ready');
} else {
  console.error(`unknown command ${cmd}`);
  process.exit(2);
}
