import BridgeStore
import Foundation

/// Where a device's admin operations run: here, or on the worker holding its lease, to which
/// they are forwarded (`ControlService`). Without a forwarder (no broker, tests) a device run
/// elsewhere is refused with `DEVICE_OWNED_ELSEWHERE`, naming the owner.
extension DeviceManager {
    enum Placement {
        case here
        case elsewhere(worker: String)
    }

    /// Installs (or removes) the way requests reach other workers.
    public func setForwarder(_ forwarder: DeviceForwarder?) { self.forwarder = forwarder }

    /// The device's placement. `take`: a free device is taken by this worker on the spot (an
    /// operation that changes the device); without it a free device counts as here (a read).
    func placement(_ id: DeviceID, take: Bool) async throws(DeviceError) -> Placement {
        guard owned != nil, leases[id] == nil else { return .here }
        if take, await acquireNow(id) { return .here }
        guard let rows = try? await store.leases.leases(), let now = try? await store.leases.now() else {
            throw DeviceError(.unavailable, "device \(id): the lease table cannot be read now; retry")
        }
        guard let holder = rows.first(where: { $0.device == id && $0.isLive(at: now) })?.owner else {
            if take { throw DeviceError(.unavailable, "device \(id) is changing hands; retry") }
            return .here
        }
        // Our own name on a live lease we do not run: it is being dropped or taken right now.
        if holder == workerID { throw DeviceError(.unavailable, "device \(id) is changing hands; retry") }
        return .elsewhere(worker: holder)
    }

    /// Runs an admin operation here when this worker owns the device (taking it if it is free),
    /// otherwise on its owner when `forward` (requests from the control queue are not forwarded
    /// again: the owner changed meanwhile, and the caller hears so).
    public func perform(_ request: ControlRequest, forward: Bool) async throws(DeviceError) -> ControlReply {
        let id = try deviceID(request.device)
        switch try await placement(id, take: request.op != .currentQR) {
        case .elsewhere(let worker):
            guard forward, let forwarder else {
                throw DeviceError(.ownedElsewhere, "device \(id) is run by worker \(worker); send the request there")
            }
            return try await forwarder(worker, request).get()
        case .here:
            return try await performHere(request, id)
        }
    }

    private func performHere(_ request: ControlRequest, _ id: DeviceID) async throws(DeviceError) -> ControlReply {
        guard let actor = devices[id] else { throw DeviceError(.notFound, "device \(id) not found") }
        switch request.op {
        case .qrLogin:
            return ControlReply(qr: try await actor.startQRLogin(timeout: configuration.qrTimeout))
        case .currentQR:
            return ControlReply(qr: await actor.currentQR)
        case .pairCode:
            guard let phone = request.phone else { throw DeviceError(.invalidPhoneNumber, "no phone number given") }
            return ControlReply(pairCode: try await actor.pairWithCode(phone: phone))
        case .logout:
            try await actor.logout()
        case .reconnect:
            guard await actor.isLoggedIn() else { throw DeviceError(.notLoggedIn, "device \(id) is not logged in") }
            try await actor.reconnect()
        case .delete:
            try await deleteHere(id)
        }
        return ControlReply()
    }
}
