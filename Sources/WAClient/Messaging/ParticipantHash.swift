import Foundation
import WABinary
import WACrypto

/// The `phash` attribute of a sent message: `"2:"` + unpadded base64 of the
/// first 6 bytes of SHA-256 over the devices' JIDs in their AD form
/// (`user.agent:device@server`), sorted as strings and concatenated with no
/// separator. The server compares it with its own device list; a mismatch
/// tells the sender to refresh its device cache.
public enum ParticipantHash {
    public static func v2(_ devices: some Sequence<JID>) -> String {
        let joined = devices.map(adString).sorted().joined()
        let digest = Symmetric.sha256(Data(joined.utf8)).prefix(6)
        var b64 = Data(digest).base64EncodedString()
        while b64.hasSuffix("=") { b64.removeLast() }
        return "2:" + b64
    }

    /// `user.agent:device@server`, the form hashed (also for device 0).
    public static func adString(_ jid: JID) -> String {
        "\(jid.user).\(jid.agent):\(jid.device)@\(jid.server)"
    }
}
