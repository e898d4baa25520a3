"""libsignal v3 peer for WASignal's interop tests, backed by python-axolotl
(an independent port of libsignal-protocol-java) with in-memory stores.

One process is one device. It reads one JSON object per line on stdin and
answers one JSON object per line; bytes travel as hex, numbers as decimal
strings. A Signal exception is answered as {"error": ClassName, "detail": …}
so the Swift test can check that the peer refused what it should refuse.

  {"op": "identity"}                                  -> {"identity": hex33, "regid": n}
  {"op": "bundle", "device": n}                       -> a fresh prekey bundle of ours
  {"op": "build", "name", "device", bundle fields}    -> {} (X3DH as initiator)
  {"op": "encrypt", "name", "device", "plaintext"}    -> {"type": "pkmsg"|"msg", "ciphertext": hex}
  {"op": "decrypt", "name", "device", "type", "ciphertext"} -> {"plaintext": hex}
  {"op": "group_create", "group", "name", "device"}   -> {"skdm": hex}   (our sender key)
  {"op": "group_process", "group", "name", "device", "skdm"} -> {}
  {"op": "group_encrypt", "group", "name", "device", "plaintext"} -> {"ciphertext": hex}
  {"op": "group_decrypt", "group", "name", "device", "ciphertext"} -> {"plaintext": hex}
"""
import json
import sys

from axolotl.axolotladdress import AxolotlAddress
from axolotl.ecc.curve import Curve
from axolotl.groups.groupcipher import GroupCipher
from axolotl.groups.groupsessionbuilder import GroupSessionBuilder
from axolotl.groups.senderkeyname import SenderKeyName
from axolotl.identitykey import IdentityKey
from axolotl.protocol.prekeywhispermessage import PreKeyWhisperMessage
from axolotl.protocol.senderkeydistributionmessage import SenderKeyDistributionMessage
from axolotl.protocol.whispermessage import WhisperMessage
from axolotl.sessionbuilder import SessionBuilder
from axolotl.sessioncipher import SessionCipher
from axolotl.state.prekeybundle import PreKeyBundle
from axolotl.tests.groups.inmemorysenderkeystore import InMemorySenderKeyStore
from axolotl.tests.inmemoryaxolotlstore import InMemoryAxolotlStore
from axolotl.util.keyhelper import KeyHelper

store = InMemoryAxolotlStore()
sender_keys = InMemorySenderKeyStore()
next_prekey = [1]
SIGNED_PREKEY_ID = 7


def setup():
    spk = KeyHelper.generateSignedPreKey(store.getIdentityKeyPair(), SIGNED_PREKEY_ID)
    store.storeSignedPreKey(SIGNED_PREKEY_ID, spk)


def cipher(req):
    return SessionCipher(store, store, store, store, req["name"], int(req["device"]))


def sender_key_name(req):
    return SenderKeyName(req["group"], AxolotlAddress(req["name"], int(req["device"])))


def handle(req):
    op = req["op"]
    if op == "identity":
        return {"identity": store.getIdentityKeyPair().getPublicKey().serialize().hex(),
                "regid": str(store.getLocalRegistrationId())}
    if op == "bundle":
        prekey = KeyHelper.generatePreKeys(next_prekey[0], 1)[0]
        next_prekey[0] += 1
        store.storePreKey(prekey.getId(), prekey)
        spk = store.loadSignedPreKey(SIGNED_PREKEY_ID)
        return {
            "regid": str(store.getLocalRegistrationId()), "device": req.get("device", "1"),
            "prekey_id": str(prekey.getId()), "prekey": prekey.getKeyPair().getPublicKey().serialize().hex(),
            "spk_id": str(SIGNED_PREKEY_ID), "spk": spk.getKeyPair().getPublicKey().serialize().hex(),
            "spk_sig": spk.getSignature().hex(),
            "identity": store.getIdentityKeyPair().getPublicKey().serialize().hex(),
        }
    if op == "build":
        prekey = Curve.decodePoint(bytes.fromhex(req["prekey"]), 0) if req.get("prekey") else None
        bundle = PreKeyBundle(
            int(req["regid"]), int(req["device"]), int(req["prekey_id"]) if prekey else None, prekey,
            int(req["spk_id"]), Curve.decodePoint(bytes.fromhex(req["spk"]), 0), bytes.fromhex(req["spk_sig"]),
            IdentityKey(bytes.fromhex(req["identity"]), 0))
        SessionBuilder(store, store, store, store, req["name"], int(req["device"])).processPreKeyBundle(bundle)
        return {}
    if op == "encrypt":
        message = cipher(req).encrypt(bytes.fromhex(req["plaintext"]))
        kind = "pkmsg" if isinstance(message, PreKeyWhisperMessage) else "msg"
        return {"type": kind, "ciphertext": message.serialize().hex()}
    if op == "decrypt":
        data = bytes.fromhex(req["ciphertext"])
        if req["type"] == "pkmsg":
            plaintext = cipher(req).decryptPkmsg(PreKeyWhisperMessage(serialized=data))
        else:
            plaintext = cipher(req).decryptMsg(WhisperMessage(serialized=data))
        return {"plaintext": bytes(plaintext).hex()}
    if op == "group_create":
        skdm = GroupSessionBuilder(sender_keys).create(sender_key_name(req))
        return {"skdm": skdm.serialize().hex()}
    if op == "group_process":
        skdm = SenderKeyDistributionMessage(serialized=bytes.fromhex(req["skdm"]))
        GroupSessionBuilder(sender_keys).process(sender_key_name(req), skdm)
        return {}
    if op == "group_encrypt":
        ciphertext = GroupCipher(sender_keys, sender_key_name(req)).encrypt(bytes.fromhex(req["plaintext"]))
        return {"ciphertext": bytes(ciphertext).hex()}
    if op == "group_decrypt":
        plaintext = GroupCipher(sender_keys, sender_key_name(req)).decrypt(bytes.fromhex(req["ciphertext"]))
        return {"plaintext": bytes(plaintext).hex()}
    raise ValueError("unknown op %r" % op)


def main():
    setup()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        try:
            answer = handle(req)
        except Exception as e:  # reported to the test, which decides
            answer = {"error": type(e).__name__, "detail": str(e)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
