import Foundation
import WACrypto

/// What a phone's camera reads from a companion's QR code, parsed on the phone's side (not with the
/// client's `Pairing.parseQR`, so a client that builds a wrong QR string is caught).
///
/// Forms: `https://wa.me/settings/linked_devices#ref,noise,identity,adv,platform` (whatsmeow
/// pair.go makeQRData today) and the older bare `ref,noise,identity,adv[,platform]`. Keys are
/// standard base64 of 32 bytes each; the ADV secret is 32 bytes.
struct SimQRCode: Sendable, Equatable {
    static let linkPrefix = "https://wa.me/settings/linked_devices#"
    /// Longest string a phone takes (a real one is about 200 characters).
    static let maxLength = 1_024

    let ref: String
    let noiseKey: Curve25519PublicKey
    let identityKey: Curve25519PublicKey
    let advSecret: Data
    let platform: String?
    let isLinkForm: Bool

    init(scanning text: String) throws(SimError) {
        guard text.utf8.count <= Self.maxLength else { throw .badQR("QR string too long") }
        var body = Substring(text)
        let isLink = body.hasPrefix(Self.linkPrefix)
        if isLink { body = body.dropFirst(Self.linkPrefix.count) }
        let parts = body.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        // The link form always names the platform (whatsmeow's PairClientType, "0"…"9").
        guard isLink ? parts.count == 5 : (parts.count == 4 || parts.count == 5) else {
            throw .badQR("not a WhatsApp QR string")
        }
        guard parts[0].hasPrefix("2@"), parts[0].count > 2 else { throw .badQR("ref is not a pair-device ref") }
        func key(_ part: String, _ name: String) throws(SimError) -> Data {
            guard let data = Data(base64Encoded: part), data.count == 32 else { throw .badQR("\(name) is not 32 bytes of base64") }
            return data
        }
        let noise = try key(parts[1], "noise key")
        let identity = try key(parts[2], "identity key")
        let adv = try key(parts[3], "adv secret")
        let platform = parts.count == 5 ? parts[4] : nil
        if let platform { guard !platform.isEmpty, platform.allSatisfy(\.isNumber) else { throw .badQR("platform is not a number") } }
        do {
            noiseKey = try Curve25519PublicKey(rawRepresentation: noise)
            identityKey = try Curve25519PublicKey(rawRepresentation: identity)
        } catch { throw .badQR("key does not parse") }
        ref = parts[0]
        advSecret = adv
        self.platform = platform
        isLinkForm = isLink
    }
}
