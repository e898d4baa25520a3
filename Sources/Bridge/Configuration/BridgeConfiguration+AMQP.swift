import AMQP

extension BridgeConfiguration {
    /// The broker settings as the AMQP module takes them.
    public func amqpConfiguration() throws(AMQPError) -> AMQPConfiguration {
        try AMQPConfiguration(
            url: amqpURL,
            tls: AMQPConfiguration.TLS(
                caFile: amqpCAFile, certFile: amqpCertFile, keyFile: amqpKeyFile,
                verifyPeer: amqpVerifyPeer, verifyHostname: amqpVerifyPeer),
            heartbeat: UInt16(amqpHeartbeat),
            connectionName: workerName)
    }
}
