import Foundation
import WABinary
import WAProto
import WASignal

extension MessageSender {
    /// A group message with our sender key for (group, our address).
    ///
    /// Devices not yet holding our sender key (all of `participantDevices`
    /// minus `devicesWithSenderKey` and minus the sending device) get
    /// `Message{senderKeyDistributionMessage{groupID, axolotl…}}` 1:1 in
    /// `<participants>`; everyone reads the top-level `<enc type=skmsg>`.
    /// ```
    /// <message to="G@g.us" id type phash>
    ///   [<participants><to jid><enc v=2 type=pkmsg|msg/></to>…</participants>]
    ///   <enc v=2 type=skmsg>…</enc>
    ///   [<device-identity/>]
    /// </message>
    /// ```
    /// phash covers all participant devices (ours included). Record
    /// `encryptedFor` as now holding the key so later sends skip them.
    /// `rotateSenderKey` (after a member left) replaces our sender key first
    /// and distributes the new one to every device, so the one who left cannot
    /// read what follows; the caller then forgets who held the old key.
    ///
    /// A LID group (`addressingMode: .lid`, facts: whatsmeow send.go `sendGroup` and
    /// `prepareMessageNode`): the stanza carries `addressing_mode=lid`, `participantDevices`
    /// are LID devices and `ownDevice` must be our LID device, so our sender key is named
    /// after it (the name receivers see in `participant`).
    public func groupMessage(
        id: String, group: JID, message: WAE2E_Message, participantDevices: [JID],
        devicesWithSenderKey: Set<JID> = [], bundles: [JID: PreKeyBundle] = [:], rotateSenderKey: Bool = false,
        addressingMode: GroupMetadata.AddressingMode? = nil
    ) async throws -> OutgoingMessage {
        guard group.server == JID.groupServer else { throw WAClientError(.invalidRecipient, "group send to a \(group.server) JID") }
        guard MessageID.isAcceptable(id) else { throw WAClientError(.invalidRecipient, "message id not acceptable") }
        guard participantDevices.count <= Self.maxGroupDevices else {
            throw WAClientError(.limitExceeded, "group of \(participantDevices.count) devices, bound \(Self.maxGroupDevices)")
        }
        if addressingMode == .lid {
            guard ownDevice.server == JID.lidServer, participantDevices.allSatisfy({ $0.server == JID.lidServer }) else {
                throw WAClientError(.invalidRecipient, "a LID group is sent from and to LID devices")
            }
        }
        let name = SenderKeyName(groupID: group.description, sender: SignalAddress(jid: ownDevice))
        let skdm: SenderKeyDistributionMessage
        let skmsg: Data
        do {
            let builder = GroupSessionBuilder(store: store)
            skdm = rotateSenderKey ? try await builder.rotate(for: name) : try await builder.create(for: name)
            skmsg = try await GroupCipher(store: store, name: name).encrypt(MessagePadding.pad(try Self.serialize(message)))
        } catch {
            throw WAClientError.signal(.messageEncryptFailed, "sender key encrypt", error)
        }

        var distribution = WAE2E_Message()
        distribution.senderKeyDistributionMessage.groupID = group.description
        distribution.senderKeyDistributionMessage.axolotlSenderKeyDistributionMessage = skdm.serialized
        let distributionPlaintext = try Self.serialize(distribution)

        var fanout = FanOut()  // the SKDM carries no media
        let holders = rotateSenderKey ? [] : devicesWithSenderKey
        for device in participantDevices where device != ownDevice && !holders.contains(device) {
            await fanout.encrypt(MessagePadding.pad(distributionPlaintext), for: device, sender: self, bundles: bundles)
        }
        let phash = ParticipantHash.v2(Set(participantDevices + [ownDevice]))
        var node = Node("message", attributes: [
            "to": .jid(group), "id": .string(id), "type": .string(Self.stanzaType(of: message)),
        ])
        if let addressingMode { node["addressing_mode"] = .string(addressingMode.rawValue) }
        if let edit = Self.editAttribute(of: message) { node["edit"] = .string(edit) }
        node["phash"] = .string(phash)
        var children: [Node] = []
        if !fanout.participants.isEmpty { children.append(Node("participants", children: fanout.participants)) }
        var skmsgNode = Node("enc", attributes: ["v": "2", "type": "skmsg"], content: .bytes([UInt8](skmsg)))
        if let mediaType = Self.mediaType(of: message) { skmsgNode["mediatype"] = .string(mediaType) }
        children.append(skmsgNode)
        if fanout.hasPreKey { children.append(.binary("device-identity", deviceIdentity)) }
        node.content = .nodes(children)
        return OutgoingMessage(
            node: node, id: id, phash: phash, encryptedFor: fanout.devices, skipped: fanout.skipped,
            hasPreKeyMessage: fanout.hasPreKey, identityChanges: fanout.identityChanges)
    }
}
