import Crypto
import Foundation
import WABinary
import WAProto

/// Builds the ClientPayload sent in the Noise ClientFinish: registration
/// for a device that has not paired yet, login for one that has.
public enum ClientPayloadBuilder {
    static func base(_ configuration: WAClientConfiguration) -> WAWa6_ClientPayload {
        var payload = WAWa6_ClientPayload()
        var agent = WAWa6_ClientPayload.UserAgent()
        agent.platform = .web
        agent.releaseChannel = .release
        var version = WAWa6_ClientPayload.UserAgent.AppVersion()
        let parts = configuration.appVersion
        if parts.count > 0 { version.primary = parts[0] }
        if parts.count > 1 { version.secondary = parts[1] }
        if parts.count > 2 { version.tertiary = parts[2] }
        agent.appVersion = version
        agent.mcc = "000"
        agent.mnc = "000"
        agent.osVersion = "0.1"
        agent.device = "Desktop"
        agent.osBuildNumber = "0.1"
        agent.localeLanguageIso6391 = "en"
        agent.localeCountryIso31661Alpha2 = "US"
        payload.userAgent = agent
        var web = WAWa6_ClientPayload.WebInfo()
        web.webSubPlatform = .webBrowser
        payload.webInfo = web
        payload.connectType = .wifiUnknown
        payload.connectReason = .userActivated
        return payload
    }

    /// The payload of a device that has never paired: its keys in devicePairingData.
    public static func registration(_ device: DeviceRecord, configuration: WAClientConfiguration) throws -> Data {
        var payload = base(configuration)
        var props = WACompanionReg_DeviceProps()
        props.os = configuration.deviceName
        var propsVersion = WACompanionReg_DeviceProps.AppVersion()
        propsVersion.primary = 0
        propsVersion.secondary = 1
        propsVersion.tertiary = 0
        props.version = propsVersion
        props.platformType = .unknown
        props.requireFullSync = false

        var pairing = WAWa6_ClientPayload.DevicePairingRegistrationData()
        pairing.eRegid = bigEndian(device.registrationID, bytes: 4)
        pairing.eKeytype = Data([0x05])
        pairing.eIdent = device.identityKey.publicKey.rawRepresentation
        pairing.eSkeyID = bigEndian(device.signedPreKey.id, bytes: 3)
        pairing.eSkeyVal = device.signedPreKey.keyPair.publicKey.rawRepresentation
        pairing.eSkeySig = device.signedPreKey.signature
        pairing.buildHash = Data(Insecure.MD5.hash(data: Data(configuration.appVersionString.utf8)))
        pairing.deviceProps = try props.serializedBytes()
        payload.devicePairingData = pairing
        payload.passive = false
        payload.pull = false
        return try payload.serializedBytes()
    }

    /// The payload of a paired device resuming its session.
    /// `lidDbMigrated`: the client keeps a PN↔LID table (`LIDMappingStore`). whatsmeow always
    /// claims it because it always has one; we claim it only when the store has one, since a
    /// client without it cannot address migrated contacts as the flag promises.
    public static func login(_ device: DeviceRecord, configuration: WAClientConfiguration, lidDbMigrated: Bool = false) throws -> Data {
        guard let jid = device.jid, let user = UInt64(jid.user) else {
            throw WAClientError(.invalidState, "login payload needs a paired device with a numeric JID")
        }
        var payload = base(configuration)
        payload.username = user
        payload.device = UInt32(jid.device)
        payload.passive = true
        payload.pull = true
        if lidDbMigrated { payload.lidDbMigrated = true }
        return try payload.serializedBytes()
    }

    static func bigEndian(_ value: UInt32, bytes: Int) -> Data {
        Data((0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) })
    }
}
