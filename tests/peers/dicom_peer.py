"""pynetdicom as a DICOM peer for tests/dicom.rs.

  dicom_peer.py find PORT [KEY=VALUE ...]     worklist C-FIND; prints JSON
  dicom_peer.py find PORT --repeat N KEYS     the same C-FIND N times on one association; prints a JSON list
  dicom_peer.py odd PORT                      a C-FIND with a garbage identifier, then a C-GET; prints the statuses
  dicom_peer.py cancel PORT                   C-FIND and, at once, C-CANCEL; prints the statuses
  dicom_peer.py concurrent PORT N             N associations open at once, each a C-FIND;
                                              prints the number of matches of each
  dicom_peer.py store-scp PORT STATUS         a C-STORE SCP (AE title PACS) answering STATUS (hex);
                                              prints "ready" once it listens

Calling AE title US01, called AE title INTERLINK. A find prints
{"status": "0x0000", "comment": "", "matches": [{"PatientName": ..., "ScheduledProcedureStepSequence.Modality": ...}]}
(comment: the final response's ErrorComment).
KEY is a keyword, or ScheduledProcedureStepSequence.KEYWORD for the step; an empty VALUE is a return key.
"""

import json
import sys
import threading
import time
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_FIND, C_GET
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import ModalityWorklistInformationFind
from pynetdicom.presentation import StoragePresentationContexts

STEP = "ScheduledProcedureStepSequence"


def identifier(pairs):
    ds, step = Dataset(), Dataset()
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key.startswith(STEP + "."):
            setattr(step, key[len(STEP) + 1:], value)
        else:
            setattr(ds, key, value)
    setattr(ds, STEP, [step])
    return ds


def flat(ds):
    out = {}
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                for inner in item:
                    out[f"{elem.keyword}.{inner.keyword}"] = str(inner.value)
        else:
            out[elem.keyword] = str(elem.value)
    return out


def associate(port):
    ae = AE(ae_title="US01")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="INTERLINK")
    if not assoc.is_established:
        sys.exit("association failed")
    return assoc


def find(assoc, pairs):
    matches, status, comment = [], None, ""
    for st, ds in assoc.send_c_find(identifier(pairs), ModalityWorklistInformationFind):
        status = st.Status
        comment = str(st.get("ErrorComment", ""))
        if st.Status in (0xFF00, 0xFF01):
            matches.append(flat(ds))
    return {"status": f"0x{status:04X}", "comment": comment, "matches": matches}


class paused:
    """Stops the association's reactor thread, which would otherwise take
    the responses off the queue before we read them (as pynetdicom's own
    send_c_*() do)."""

    def __init__(self, assoc):
        self.assoc = assoc

    def __enter__(self):
        self.assoc._reactor_checkpoint.clear()
        while not self.assoc._is_paused:
            time.sleep(0.0001)

    def __exit__(self, *exc):
        self.assoc._reactor_checkpoint.set()


def cancel(port):
    assoc = associate(port)
    context = assoc._get_valid_context(ModalityWorklistInformationFind, "", "scu")
    req = C_FIND()
    req.MessageID = 1
    req.AffectedSOPClassUID = ModalityWorklistInformationFind
    req.Priority = 2
    req.Identifier = BytesIO(encode(identifier(["PatientName="]), True, True))
    statuses = []
    with paused(assoc):
        assoc.dimse.send_msg(req, context.context_id)
        assoc.send_c_cancel(1, context.context_id)
        while True:
            _, rsp = assoc.dimse.get_msg(block=True)
            if rsp is None:
                break
            statuses.append(f"0x{rsp.Status:04X}")
            if rsp.Status not in (0xFF00, 0xFF01):
                break
    assoc.release()
    print(json.dumps(statuses))


def odd(port):
    assoc = associate(port)
    context = assoc._get_valid_context(ModalityWorklistInformationFind, "", "scu")
    statuses = []
    with paused(assoc):
        for n, primitive in enumerate([C_FIND(), C_GET()], start=1):
            primitive.MessageID = n
            primitive.AffectedSOPClassUID = ModalityWorklistInformationFind
            primitive.Priority = 2
            # (0010,0010) declaring 0x1000 bytes where two follow.
            primitive.Identifier = BytesIO(b"\x10\x00\x10\x00\x00\x10\x00\x00AB")
            assoc.dimse.send_msg(primitive, context.context_id)
            _, rsp = assoc.dimse.get_msg(block=True)
            comment = getattr(rsp, "ErrorComment", None)
            statuses.append([f"0x{rsp.Status:04X}", str(comment) if comment else ""])
    assoc.release()
    print(json.dumps(statuses))


def concurrent(port, n):
    assocs = [associate(port) for _ in range(n)]
    results = [None] * n

    def run(i):
        results[i] = len(find(assocs[i], ["PatientName=", "PatientID="])["matches"])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a in assocs:
        a.release()
    print(json.dumps(results))


def store_scp(port, status):
    def handle(event):
        print("received", event.request.AffectedSOPInstanceUID, flush=True)
        return status

    ae = AE(ae_title="PACS")
    ae.supported_contexts = StoragePresentationContexts
    ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, handle)])
    print("ready", flush=True)
    threading.Event().wait()


def main():
    command, port = sys.argv[1], int(sys.argv[2])
    if command == "find" and sys.argv[3:4] == ["--repeat"]:
        assoc = associate(port)
        print(json.dumps([find(assoc, sys.argv[5:]) for _ in range(int(sys.argv[4]))]))
        assoc.release()
    elif command == "find":
        assoc = associate(port)
        print(json.dumps(find(assoc, sys.argv[3:])))
        assoc.release()
    elif command == "odd":
        odd(port)
    elif command == "cancel":
        cancel(port)
    elif command == "concurrent":
        concurrent(port, int(sys.argv[3]))
    elif command == "store-scp":
        store_scp(port, int(sys.argv[3], 16))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
