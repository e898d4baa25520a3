"""Media encryption peer for WACrypto's interop tests, written from the
format's description with the `cryptography` package (an implementation
independent of ours): HKDF-SHA256(mediaKey, info, 112) → iv 16, cipherKey 32,
macKey 32; blob = AES-256-CBC/PKCS7(plaintext) ‖ HMAC-SHA256(macKey, iv ‖ ct)[:10].

One JSON object per line on stdin, one answer per line on stdout:
  {"op": "encrypt", "key": hex, "info": str, "data": hex} -> {"blob": hex}
  {"op": "decrypt", "key": hex, "info": str, "blob": hex} -> {"data": hex} or {"error": "bad_mac"}
"""
import hashlib
import hmac
import json
import sys

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def expand(key, info):
    out = HKDF(algorithm=hashes.SHA256(), length=112, salt=None, info=info.encode()).derive(key)
    return out[:16], out[16:48], out[48:80]


def encrypt(key, info, data):
    iv, cipher_key, mac_key = expand(key, info)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    enc = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    return ct + hmac.new(mac_key, iv + ct, hashlib.sha256).digest()[:10]


def decrypt(key, info, blob):
    iv, cipher_key, mac_key = expand(key, info)
    ct, mac = blob[:-10], blob[-10:]
    if not hmac.compare_digest(hmac.new(mac_key, iv + ct, hashlib.sha256).digest()[:10], mac):
        return None
    dec = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(ct) + dec.finalize()) + unpadder.finalize()


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        key = bytes.fromhex(req["key"])
        if req["op"] == "encrypt":
            answer = {"blob": encrypt(key, req["info"], bytes.fromhex(req["data"])).hex()}
        else:
            data = decrypt(key, req["info"], bytes.fromhex(req["blob"]))
            answer = {"error": "bad_mac"} if data is None else {"data": data.hex()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
