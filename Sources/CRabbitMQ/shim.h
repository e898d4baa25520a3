/*
 * Thin shim over rabbitmq-c 0.11 for Swift.
 *
 * Why it exists: Swift cannot call C variadic functions (amqp_login*) and
 * cannot see the library's function-like macros. Each helper here only
 * forwards to rabbitmq-c; no logic lives in C.
 */
#ifndef WABRIDGE_CRABBITMQ_SHIM_H
#define WABRIDGE_CRABBITMQ_SHIM_H

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <sys/time.h>
#include <poll.h>
#include <sys/eventfd.h>

/* Wake-up descriptor for the connection thread (EFD_* are macros). */
static inline int wab_wakeup_fd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

/* amqp_login_with_properties is variadic: forward PLAIN credentials. */
static inline amqp_rpc_reply_t
wab_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                     int channel_max, int frame_max, int heartbeat,
                     const amqp_table_t *properties, const char *user,
                     const char *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max,
                                    heartbeat, properties,
                                    AMQP_SASL_METHOD_PLAIN, user, password);
}

/* amqp_login_with_properties for SASL EXTERNAL (client certificates). */
static inline amqp_rpc_reply_t
wab_amqp_login_external(amqp_connection_state_t state, const char *vhost,
                        int channel_max, int frame_max, int heartbeat,
                        const amqp_table_t *properties, const char *identity) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max,
                                    heartbeat, properties,
                                    AMQP_SASL_METHOD_EXTERNAL, identity);
}

/* amqp_empty_bytes / amqp_empty_table are exported data symbols whose
 * const-ness Swift imports awkwardly; expose them as values. */
static inline amqp_bytes_t wab_amqp_empty_bytes(void) { return amqp_empty_bytes; }
static inline amqp_table_t wab_amqp_empty_table(void) { return amqp_empty_table; }

/* Frame payload union accessors (Swift imports anonymous unions poorly). */
static inline amqp_method_t wab_frame_method(const amqp_frame_t *f) {
  return f->payload.method;
}
static inline uint64_t wab_frame_body_size(const amqp_frame_t *f) {
  return f->payload.properties.body_size;
}
static inline void *wab_frame_properties(const amqp_frame_t *f) {
  return f->payload.properties.decoded;
}
static inline uint16_t wab_frame_class_id(const amqp_frame_t *f) {
  return f->payload.properties.class_id;
}
static inline amqp_bytes_t wab_frame_body(const amqp_frame_t *f) {
  return f->payload.body_fragment;
}

/* Field value union accessors. */
static inline amqp_boolean_t wab_fv_boolean(const amqp_field_value_t *v) { return v->value.boolean; }
static inline int8_t wab_fv_i8(const amqp_field_value_t *v) { return v->value.i8; }
static inline uint8_t wab_fv_u8(const amqp_field_value_t *v) { return v->value.u8; }
static inline int16_t wab_fv_i16(const amqp_field_value_t *v) { return v->value.i16; }
static inline uint16_t wab_fv_u16(const amqp_field_value_t *v) { return v->value.u16; }
static inline int32_t wab_fv_i32(const amqp_field_value_t *v) { return v->value.i32; }
static inline uint32_t wab_fv_u32(const amqp_field_value_t *v) { return v->value.u32; }
static inline int64_t wab_fv_i64(const amqp_field_value_t *v) { return v->value.i64; }
static inline uint64_t wab_fv_u64(const amqp_field_value_t *v) { return v->value.u64; }
static inline float wab_fv_f32(const amqp_field_value_t *v) { return v->value.f32; }
static inline double wab_fv_f64(const amqp_field_value_t *v) { return v->value.f64; }
static inline amqp_decimal_t wab_fv_decimal(const amqp_field_value_t *v) { return v->value.decimal; }
static inline amqp_bytes_t wab_fv_bytes(const amqp_field_value_t *v) { return v->value.bytes; }
static inline amqp_table_t wab_fv_table(const amqp_field_value_t *v) { return v->value.table; }
static inline amqp_array_t wab_fv_array(const amqp_field_value_t *v) { return v->value.array; }

static inline void wab_fv_set_boolean(amqp_field_value_t *v, amqp_boolean_t x) { v->kind = AMQP_FIELD_KIND_BOOLEAN; v->value.boolean = x; }
static inline void wab_fv_set_i8(amqp_field_value_t *v, int8_t x) { v->kind = AMQP_FIELD_KIND_I8; v->value.i8 = x; }
static inline void wab_fv_set_u8(amqp_field_value_t *v, uint8_t x) { v->kind = AMQP_FIELD_KIND_U8; v->value.u8 = x; }
static inline void wab_fv_set_i16(amqp_field_value_t *v, int16_t x) { v->kind = AMQP_FIELD_KIND_I16; v->value.i16 = x; }
static inline void wab_fv_set_u16(amqp_field_value_t *v, uint16_t x) { v->kind = AMQP_FIELD_KIND_U16; v->value.u16 = x; }
static inline void wab_fv_set_i32(amqp_field_value_t *v, int32_t x) { v->kind = AMQP_FIELD_KIND_I32; v->value.i32 = x; }
static inline void wab_fv_set_u32(amqp_field_value_t *v, uint32_t x) { v->kind = AMQP_FIELD_KIND_U32; v->value.u32 = x; }
static inline void wab_fv_set_i64(amqp_field_value_t *v, int64_t x) { v->kind = AMQP_FIELD_KIND_I64; v->value.i64 = x; }
static inline void wab_fv_set_u64(amqp_field_value_t *v, uint64_t x) { v->kind = AMQP_FIELD_KIND_U64; v->value.u64 = x; }
static inline void wab_fv_set_timestamp(amqp_field_value_t *v, uint64_t x) { v->kind = AMQP_FIELD_KIND_TIMESTAMP; v->value.u64 = x; }
static inline void wab_fv_set_f32(amqp_field_value_t *v, float x) { v->kind = AMQP_FIELD_KIND_F32; v->value.f32 = x; }
static inline void wab_fv_set_f64(amqp_field_value_t *v, double x) { v->kind = AMQP_FIELD_KIND_F64; v->value.f64 = x; }
static inline void wab_fv_set_decimal(amqp_field_value_t *v, uint8_t decimals, uint32_t value) { v->kind = AMQP_FIELD_KIND_DECIMAL; v->value.decimal.decimals = decimals; v->value.decimal.value = value; }
static inline void wab_fv_set_utf8(amqp_field_value_t *v, amqp_bytes_t x) { v->kind = AMQP_FIELD_KIND_UTF8; v->value.bytes = x; }
static inline void wab_fv_set_bytes(amqp_field_value_t *v, amqp_bytes_t x) { v->kind = AMQP_FIELD_KIND_BYTES; v->value.bytes = x; }
static inline void wab_fv_set_void(amqp_field_value_t *v) { v->kind = AMQP_FIELD_KIND_VOID; }
static inline void wab_fv_set_table(amqp_field_value_t *v, amqp_table_t x) { v->kind = AMQP_FIELD_KIND_TABLE; v->value.table = x; }
static inline void wab_fv_set_array(amqp_field_value_t *v, amqp_array_t x) { v->kind = AMQP_FIELD_KIND_ARRAY; v->value.array = x; }

#endif
