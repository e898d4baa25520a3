/*
 * Baseline for Benchmarks/AMQPBench: the same work done with plain
 * rabbitmq-c, no Swift. Publishes N messages with publisher confirms
 * (at most WINDOW unconfirmed at a time), then consumes them with manual
 * acks at the same prefetch as the Swift run, and prints one line per
 * phase: "c <phase> <size> <messages> <seconds>".
 *
 * usage: amqp-bench-c HOST PORT QUEUE SIZE COUNT WINDOW PREFETCH
 */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die_on(amqp_rpc_reply_t r, const char *what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    fprintf(stderr, "%s failed (reply type %d)\n", what, r.reply_type);
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s HOST PORT QUEUE SIZE COUNT WINDOW PREFETCH\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  const char *queue = argv[3];
  size_t size = (size_t)atol(argv[4]);
  long count = atol(argv[5]);
  long window = atol(argv[6]);
  int prefetch = atoi(argv[7]);

  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t *sock = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(sock, host, port) != AMQP_STATUS_OK) {
    fprintf(stderr, "cannot connect\n");
    return 1;
  }
  die_on(amqp_login(conn, "/", 0, 131072, 30, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
  amqp_channel_open(conn, 1);
  die_on(amqp_get_rpc_reply(conn), "channel.open");
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(conn), "queue.declare");
  amqp_queue_purge(conn, 1, amqp_cstring_bytes(queue));
  die_on(amqp_get_rpc_reply(conn), "queue.purge");
  amqp_confirm_select(conn, 1);
  die_on(amqp_get_rpc_reply(conn), "confirm.select");

  char *body = malloc(size);
  memset(body, 'x', size);
  amqp_bytes_t payload = {size, body};
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.delivery_mode = 2;

  /* Publish with a sliding window of unconfirmed messages. */
  double t0 = now();
  long sent = 0, confirmed = 0;
  char idbuf[32];
  while (confirmed < count) {
    while (sent < count && sent - confirmed < window) {
      snprintf(idbuf, sizeof idbuf, "%ld", sent);
      props.message_id = amqp_cstring_bytes(idbuf);
      if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &props, payload) != AMQP_STATUS_OK) {
        fprintf(stderr, "publish failed\n");
        return 1;
      }
      sent++;
    }
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK) {
      fprintf(stderr, "wait failed\n");
      return 1;
    }
    if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *ack = frame.payload.method.decoded;
      confirmed = ack->multiple ? (long)ack->delivery_tag : confirmed + 1;
    } else if (frame.frame_type == AMQP_FRAME_METHOD && frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      fprintf(stderr, "nack\n");
      return 1;
    }
    amqp_maybe_release_buffers(conn);
  }
  double t1 = now();
  printf("c publish %zu %ld %.6f\n", size, count, t1 - t0);

  /* Consume everything with manual acks. */
  amqp_basic_qos(conn, 1, 0, (uint16_t)prefetch, 0);
  die_on(amqp_get_rpc_reply(conn), "basic.qos");
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  die_on(amqp_get_rpc_reply(conn), "basic.consume");
  double t2 = now();
  long received = 0;
  while (received < count) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t r = amqp_consume_message(conn, &env, NULL, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        /* A late confirm frame: read and drop it. */
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK) return 1;
        continue;
      }
      fprintf(stderr, "consume failed\n");
      return 1;
    }
    amqp_basic_ack(conn, 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    received++;
  }
  double t3 = now();
  printf("c consume %zu %ld %.6f\n", size, count, t3 - t2);

  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  free(body);
  return 0;
}
