import Bridge
import Foundation

/// The small HTML page an operator opens per device: its state and, while it is
/// logging in, the QR image, refreshed every few seconds as the code rotates.
/// No scripts from elsewhere; the page polls `GET /devices/{id}` and reloads the image.
enum DevicePage {
    static func html(_ d: DeviceInfo) -> String {
        let id = escape(d.id)
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>wabridge · \(id)</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
        .state{display:inline-block;padding:.2rem .6rem;border-radius:.4rem;background:#eee;font-weight:600}
        .connected{background:#c8f7c5}.logged_out{background:#f7c5c5}.connecting,.reconnecting{background:#f7ecc5}
        img{image-rendering:pixelated;width:320px;height:320px;border:1px solid #ccc;display:none}
        button{margin-right:.5rem}
        </style></head>
        <body>
        <h1>Device <code>\(id)</code></h1>
        <p>State: <span id="state" class="state \(d.state.rawValue)">\(d.state.rawValue)</span></p>
        <p>JID: <code id="jid">\(escape(d.jid ?? "—"))</code></p>
        <p><button id="login">Log in with QR</button></p>
        <p id="hint"></p>
        <img id="qr" alt="QR code">
        <script>
        const id = \(jsonString(d.id));
        const token = new URLSearchParams(location.search).get("token");
        const headers = token ? {"Authorization": "Bearer " + token} : {};
        const q = token ? "?token=" + encodeURIComponent(token) + "&" : "?";
        let loggingIn = false;
        async function refresh() {
          try {
            const r = await fetch("/devices/" + id, {headers});
            if (r.ok) {
              const d = await r.json();
              const s = document.getElementById("state");
              s.textContent = d.state; s.className = "state " + d.state;
              document.getElementById("jid").textContent = d.jid || "—";
              if (d.state === "connected") { loggingIn = false; }
            }
          } catch (e) {}
          const img = document.getElementById("qr");
          if (loggingIn) {
            img.src = "/devices/" + id + "/login/qr.png" + q + "t=" + Date.now();
            img.style.display = "block";
            document.getElementById("hint").textContent = "Scan with WhatsApp → Linked devices";
          } else {
            img.style.display = "none";
            document.getElementById("hint").textContent = "";
          }
        }
        document.getElementById("login").onclick = async () => {
          const r = await fetch("/devices/" + id + "/login/qr", {method: "POST", headers});
          const body = await r.json();
          if (r.ok) { loggingIn = true; } else { document.getElementById("hint").textContent = body.error.message; }
          refresh();
        };
        loggingIn = \(d.state == .connecting ? "true" : "false");
        refresh();
        setInterval(refresh, 3000);
        </script>
        </body></html>
        """
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func jsonString(_ s: String) -> String {
        let data = (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
    }
}
