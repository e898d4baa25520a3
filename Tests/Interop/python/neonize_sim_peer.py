"""Real-client check of WASim: whatsmeow (shipped in the PyPI package neonize)
pairs with wabridge-sim by QR, resumes its stored session, pairs a second
account by pairing code, and exchanges texts with a simulated phone.

Run it only inside a fresh network namespace (the Swift test starts it with
`unshare -n`): it refuses to run when any interface other than loopback
exists, so a misconfigured client can never reach the real service.

Usage: neonize_sim_peer.py SIM_BINARY WORKDIR
Prints one JSON object per line: {"step": ..., "ok": bool, ...}; exit 0.

How the client is pointed at the simulator (facts from shared/docs/simulator-facts.md):
* reach: HTTPS_PROXY → a loopback CONNECT proxy here → the simulator's TLS port;
* TLS: the simulator's certificate names web.whatsapp.com and is trusted via SSL_CERT_FILE;
* Noise root: a copy of the package whose library has WhatsApp's root key bytes
  replaced by the simulator's root (the original package is left untouched).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

WHATSAPP_ROOT = bytes.fromhex("142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b")
CONTROL_PORT, TLS_PORT, PROXY_PORT = 18951, 18952, 18953
QR_PHONE, CODE_PHONE = "15551230000", "15551230001"


def emit(**fields):
    print(json.dumps(fields), flush=True)


def isolated():
    """Brings loopback up (a new namespace starts with it down) and checks it is the only interface."""
    import fcntl
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    names = [name for _, name in socket.if_nameindex()]
    return names == ["lo"], names


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy_connection(client, log):
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = client.recv(4096)
        if not data:
            client.close()
            return
        buf += data
    line = buf.split(b"\r\n")[0].decode(errors="replace")
    log.append(line)
    if not line.startswith("CONNECT web.whatsapp.com:443"):
        client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        client.close()
        return
    upstream = socket.create_connection(("127.0.0.1", TLS_PORT))
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


def start_proxy(log):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PROXY_PORT))
    server.listen(16)

    def loop():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=proxy_connection, args=(conn, log), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def control(method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{CONTROL_PORT}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
        return json.loads(text) if text else {}


CLIENT = r'''
import json, os, sys, threading, time, urllib.request
from neonize.client import NewClient
from neonize.events import ConnectedEv, MessageEv, PairStatusEv
from neonize.utils.jid import build_jid
mode, phone, control, db = sys.argv[1:5]
peer = sys.argv[5] if len(sys.argv) > 5 else ""
client = NewClient(db)
once = threading.Event()
def say(**f): print("@@" + json.dumps(f), flush=True)
def post(path, body):
    req = urllib.request.Request(control + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        say(event="control", path=path, answer=urllib.request.urlopen(req, timeout=60).read().decode())
    except Exception as e:
        say(event="control_failed", path=path, error=str(e))
@client.qr
def on_qr(c, data):
    say(event="qr", text=data.decode()[:48])
    if once.is_set():
        return
    once.set()
    if mode == "qr":
        threading.Thread(target=post, args=("/phones/%s/scan" % phone, {"qr": data.decode()}), daemon=True).start()
    elif mode == "code":
        def pair():
            code = c.PairPhone(phone, True)
            say(event="code", code=code)
            post("/phones/%s/code" % phone, {"code": code})
        threading.Thread(target=pair, daemon=True).start()
@client.event(PairStatusEv)
def on_pair(c, ev):
    say(event="paired", user=ev.ID.User, device=ev.ID.Device, platform=ev.Platform)
@client.event(MessageEv)
def on_message(c, ev):
    m = ev.Message
    text = m.conversation or m.extendedTextMessage.text
    say(event="message", text=text, sender=ev.Info.MessageSource.Sender.User,
        sender_server=ev.Info.MessageSource.Sender.Server, sender_alt=ev.Info.MessageSource.SenderAlt.User, id=ev.Info.ID)
    if mode == "message" and text == "from sim phone":
        def reply():
            try:
                r = c.send_message(build_jid(peer), "from neonize")
                say(event="sent", id=r.ID)
            except Exception as e:
                say(event="send_failed", error=str(e))
            time.sleep(3)
            os._exit(0)
        threading.Thread(target=reply, daemon=True).start()
@client.event(ConnectedEv)
def on_connected(c, ev):
    say(event="connected")
    if mode == "message":
        threading.Thread(target=post, args=("/phones/%s/messages" % peer,
                         {"to": phone + "@s.whatsapp.net", "text": "from sim phone"}), daemon=True).start()
        return
    def stop():
        time.sleep(2)
        os._exit(0)
    threading.Thread(target=stop, daemon=True).start()
client.connect()
'''


def run_client(python, pkg, mode, phone, db, workdir, timeout=40, peer=""):
    env = dict(os.environ)
    env.update({
        "HTTPS_PROXY": f"http://127.0.0.1:{PROXY_PORT}", "https_proxy": f"http://127.0.0.1:{PROXY_PORT}",
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        "SSL_CERT_FILE": os.path.join(workdir, "sim-cert.pem"), "PYTHONPATH": pkg,
    })
    with open(os.path.join(workdir, f"client-{mode}.log"), "w") as log:
        try:
            out = subprocess.run([python, "-c", CLIENT, mode, phone, f"http://127.0.0.1:{CONTROL_PORT}", db, peer],
                                 env=env, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout).stdout
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    return [json.loads(line[2:]) for line in out.splitlines() if line.startswith("@@")]


def main():
    sim_binary, workdir = sys.argv[1], sys.argv[2]
    ok, names = isolated()
    if not ok:
        emit(step="isolation", ok=False, interfaces=names)
        return
    emit(step="isolation", ok=True)

    root_private = os.urandom(32).hex()
    sim_log = open(os.path.join(workdir, "sim.log"), "w")
    sim = subprocess.Popen(
        [sim_binary, "--port", "0", "--control-port", str(CONTROL_PORT), "--tls-port", str(TLS_PORT),
         "--tls-name", "web.whatsapp.com", "--tls-cert-out", os.path.join(workdir, "sim-cert.pem"),
         "--root-key", root_private, "--phones", f"{QR_PHONE},{CODE_PHONE}"],
        stdout=subprocess.PIPE, stderr=sim_log, text=True)
    try:
        root_public = None
        deadline = time.time() + 30
        while time.time() < deadline and root_public is None:
            line = sim.stdout.readline()
            if not line:
                break
            if "noise root public key" in line:
                root_public = bytes.fromhex(line.split()[-1])
        if root_public is None:
            emit(step="sim", ok=False)
            return
        for _ in range(100):
            try:
                control("GET", "/info")
                break
            except OSError:
                time.sleep(0.1)

        import neonize
        original = os.path.dirname(neonize.__file__)
        pkg = os.path.join(workdir, "pkg")
        shutil.copytree(original, os.path.join(pkg, "neonize"))
        library = os.path.join(pkg, "neonize", "neonize-linux-amd64.so")
        data = open(library, "rb").read()
        if data.count(WHATSAPP_ROOT) != 1:
            emit(step="patch", ok=False, occurrences=data.count(WHATSAPP_ROOT))
            return
        open(library, "wb").write(data.replace(WHATSAPP_ROOT, root_public))
        emit(step="patch", ok=True)

        proxy_log = []
        start_proxy(proxy_log)
        python = sys.executable

        qr_db = os.path.join(workdir, "qr.db")
        events = run_client(python, pkg, "qr", QR_PHONE, qr_db, workdir)
        devices = control("GET", f"/phones/{QR_PHONE}/devices")["devices"]
        device = control("GET", f"/devices/{devices[0]}") if devices else {}
        emit(step="qr", ok=any(e["event"] == "connected" for e in events), events=events, devices=devices,
             prekeys=device.get("uploadedPreKeys"), proxied=list(proxy_log))

        if not any(e["event"] == "connected" for e in events):
            return  # no stored session to resume; the code step would only repeat the failure's wait
        events = run_client(python, pkg, "resume", QR_PHONE, qr_db, workdir)
        emit(step="resume", ok=any(e["event"] == "connected" for e in events), events=events,
             devices=control("GET", f"/phones/{QR_PHONE}/devices")["devices"])

        events = run_client(python, pkg, "code", CODE_PHONE, os.path.join(workdir, "code.db"), workdir)
        emit(step="code", ok=any(e["event"] == "connected" for e in events), events=events,
             devices=control("GET", f"/phones/{CODE_PHONE}/devices")["devices"])

        # Messaging: CODE_PHONE's simulated phone texts the QR account; whatsmeow decrypts it and
        # answers the phone, which decrypts that.
        events = run_client(python, pkg, "message", QR_PHONE, qr_db, workdir, timeout=60, peer=CODE_PHONE)
        time.sleep(1)
        received = control("GET", f"/phones/{CODE_PHONE}/messages")["messages"]
        emit(step="message", ok=any(e["event"] == "sent" for e in events), events=events, phoneReceived=received)
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()


if __name__ == "__main__":
    main()
