"""Noise peer for WAClient's interop tests: WhatsApp's Noise_XX_25519_AESGCM_SHA256
played by dissononce, over stdin/stdout with WhatsApp's framing.

dissononce follows the Noise spec; WhatsApp differs in one way that matters
here: a payload is mixed into h only once a cipher key exists (the spec
MixHashes the empty payload of the first message too). WASymmetricState
below applies that rule; everything else is dissononce's own.

Usage:
  noise_peer.py responder STATIC_PRIV_HEX CERT_CHAIN_HEX EXPECTED_CLIENT_PAYLOAD_HEX MESSAGES
  noise_peer.py initiator STATIC_PRIV_HEX CLIENT_PAYLOAD_HEX EXPECTED_CERT_CHAIN_HEX MESSAGES

After the handshake the peer sends MESSAGES transport frames (all in one
write, so the other side must split merged frames), then expects MESSAGES
frames back, each b"echo:" + what it sent. Exit status 0 means all matched.
"""
import sys

from dissononce.cipher.aesgcm import AESGCMCipher
from dissononce.dh.x25519.private import PrivateKey
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.sha256 import SHA256Hash
from dissononce.processing.handshakepatterns.interactive.XX import XXHandshakePattern
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.impl.handshakestate import HandshakeState
from dissononce.processing.impl.symmetricstate import SymmetricState

HEADER = b"WA\x06\x03"


class WASymmetricState(SymmetricState):
    def encrypt_and_hash(self, plaintext):
        if not self.cipherstate_has_key():
            return plaintext
        return super().encrypt_and_hash(plaintext)

    def decrypt_and_hash(self, ciphertext):
        if not self.cipherstate_has_key():
            return ciphertext
        return super().decrypt_and_hash(ciphertext)


# Minimal protobuf: only length-delimited fields occur in HandshakeMessage.
def pb_encode(fields):
    out = bytearray()
    for number, value in fields:
        out += varint(number << 3 | 2) + varint(len(value)) + value
    return bytes(out)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_decode(data):
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        if key & 7 != 2:
            raise ValueError("unexpected wire type %d" % (key & 7))
        length, i = read_varint(data, i)
        fields[key >> 3] = data[i:i + length]
        i += length
    return fields


def read_varint(data, i):
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = sys.stdin.buffer.read(n - len(buf))
        if not chunk:
            raise EOFError("stdin closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_frame():
    length = int.from_bytes(read_exact(3), "big")
    return read_exact(length)


def frame(payload):
    return len(payload).to_bytes(3, "big") + payload


def send(data):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def new_handshake(initiator, static_priv):
    dh = X25519DH()
    state = HandshakeState(WASymmetricState(CipherState(AESGCMCipher()), SHA256Hash()), dh)
    static = dh.generate_keypair(PrivateKey(static_priv))
    state.initialize(XXHandshakePattern(), initiator, HEADER, s=static)
    return state


def exchange(send_cipher, receive_cipher, count):
    sent = [b"py->swift %d " % i + bytes(range(256)) * (i % 3) for i in range(count)]
    send(b"".join(frame(send_cipher.encrypt_with_ad(b"", m)) for m in sent))
    for i in range(count):
        echoed = receive_cipher.decrypt_with_ad(b"", read_frame())
        if echoed != b"echo:" + sent[i]:
            raise AssertionError("echo %d differs: %r" % (i, echoed[:40]))


def responder(static_priv, cert_chain, expected_payload, count):
    if read_exact(4) != HEADER:
        raise AssertionError("bad connection header")
    hello = pb_decode(pb_decode(read_frame())[2])
    state = new_handshake(False, static_priv)
    state.read_message(hello[1], bytearray())

    out = bytearray()
    state.write_message(cert_chain, out)
    out = bytes(out)
    server_hello = pb_encode([(1, out[:32]), (2, out[32:80]), (3, out[80:])])
    send(frame(pb_encode([(3, server_hello)])))

    finish = pb_decode(pb_decode(read_frame())[4])
    payload = bytearray()
    c1, c2 = state.read_message(finish[1] + finish[2], payload)
    if bytes(payload) != expected_payload:
        raise AssertionError("client payload differs")
    exchange(c2, c1, count)


def initiator(static_priv, client_payload, expected_cert, count):
    state = new_handshake(True, static_priv)
    out = bytearray()
    state.write_message(b"", out)
    send(HEADER + frame(pb_encode([(2, pb_encode([(1, bytes(out))]))])))

    hello = pb_decode(pb_decode(read_frame())[3])
    cert = bytearray()
    state.read_message(hello[1] + hello[2] + hello[3], cert)
    if bytes(cert) != expected_cert:
        raise AssertionError("certificate chain payload differs")

    out = bytearray()
    c1, c2 = state.write_message(client_payload, out)
    out = bytes(out)
    send(frame(pb_encode([(4, pb_encode([(1, out[:48]), (2, out[48:])]))])))
    exchange(c1, c2, count)


def main():
    role, static_hex, a_hex, b_hex, count = sys.argv[1:6]
    args = (bytes.fromhex(static_hex), bytes.fromhex(a_hex), bytes.fromhex(b_hex), int(count))
    if role == "responder":
        responder(*args)
    elif role == "initiator":
        initiator(*args)
    else:
        raise SystemExit("unknown role %s" % role)


if __name__ == "__main__":
    main()
