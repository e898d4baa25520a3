import Foundation
import WABinary

/// Many devices, cheaply: linked devices with real keys (identity, signed prekey, one-time
/// prekeys, so peers fetch real bundles and open real sessions) that the simulator decrypts
/// for itself instead of through a live connection. For tests of large groups.
extension WASim {
    /// Links `count` headless devices to the phone `number` (created if needed). Returns their JIDs.
    @discardableResult
    public func provisionHeadlessDevices(phone number: String, count: Int, preKeys: Int = 2) async throws -> [JID] {
        var out: [JID] = []
        for _ in 0..<count {
            var phone = createPhone(number: number)
            let deviceID = phone.nextDeviceID
            let keyIndex = phone.nextKeyIndex
            phone.nextDeviceID += 1
            phone.nextKeyIndex += 1
            phones[number] = phone
            let jid = JID(user: number, device: deviceID, server: JID.userServer)
            let lid = JID(user: phone.lidUser, device: deviceID, server: JID.lidServer)
            let (agent, device) = try await SimHeadlessDevice.make(jid: jid, lid: lid, keyIndex: keyIndex, preKeys: preKeys)
            devices[jid] = device
            headless[jid] = agent
            out.append(jid)
        }
        return out
    }

    /// Whether the headless device decrypted message `id`, and its text (nil: not received).
    public func headlessText(device jid: JID, id: String) async -> String?? {
        await headless[jid]?.text(of: id)
    }

    /// How many stanzas a headless device could not decrypt.
    public func headlessFailures(device jid: JID) async -> Int { await headless[jid]?.failures ?? 0 }
}
