"""XEdDSA peer for WACrypto's interop tests, backed by python-axolotl-curve25519
(the C curve25519/curve_sigs code of libsignal-protocol-c).

Reads one JSON object per line on stdin and answers one JSON object per line:
  {"op": "pub", "priv": hex}                               -> {"pub": hex}
  {"op": "sign", "priv": hex, "msg": hex, "random": hex}   -> {"sig": hex}
  {"op": "verify", "pub": hex, "msg": hex, "sig": hex}     -> {"valid": bool}
"""
import json
import sys

import axolotl_curve25519 as curve


def handle(req):
    op = req["op"]
    if op == "pub":
        return {"pub": curve.generatePublicKey(bytes.fromhex(req["priv"])).hex()}
    if op == "sign":
        sig = curve.calculateSignature(
            bytes.fromhex(req["random"]), bytes.fromhex(req["priv"]), bytes.fromhex(req["msg"]))
        return {"sig": sig.hex()}
    if op == "verify":
        rc = curve.verifySignature(
            bytes.fromhex(req["pub"]), bytes.fromhex(req["msg"]), bytes.fromhex(req["sig"]))
        return {"valid": rc == 0}
    raise ValueError("unknown op %r" % op)


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        sys.stdout.write(json.dumps(handle(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
