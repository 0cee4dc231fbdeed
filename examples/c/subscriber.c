/* A minimal igrt console in C against libzmq: prints every correction, following the
 * late-joiner rule (subscribe first, then ask "latest"; a heartbeat whose last_seq is above the
 * last correction seen means one was missed: ask "latest" again).
 *
 *   cc -o subscriber subscriber.c $(pkg-config --cflags --libs libzmq)
 *   ./subscriber tcp://127.0.0.1:5556 tcp://127.0.0.1:5557 [COUNT [SERVER_PUBLIC CLIENT_PUBLIC
 *                CLIENT_SECRET]]   (keys: Z85 text, when the service runs with [zmq.curve])
 *
 * The JSON is not parsed: the example only finds the top-level "seq" / "last_seq" numbers,
 * which igrt always writes before any nested object of the message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const char *keys[3];

static void *make_socket(void *context, int type) {
    void *s = zmq_socket(context, type);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (keys[0]) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, keys[0], 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, keys[1], 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, keys[2], 40);
    }
    return s;
}

static long number_after(const char *json, const char *key) {
    const char *at = strstr(json, key);
    return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

/* Ask "latest"; prints the correction and returns its seq when newer than last, else last. */
static long ask_latest(void *context, const char *command, long last) {
    void *req = make_socket(context, ZMQ_REQ);
    char reply[65536];
    long seq = last;
    zmq_connect(req, command);
    zmq_send(req, "{\"cmd\":\"latest\"}", 16, 0);
    zmq_pollitem_t item = {req, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 3000) == 1) {
        int n = zmq_recv(req, reply, sizeof reply - 1, 0);
        if (n > 0) {
            reply[n < (int)sizeof reply - 1 ? n : (int)sizeof reply - 1] = '\0';
            const char *message = strstr(reply, "\"message\":{");
            long found = message ? number_after(message, "\"seq\":") : -1;
            if (found > last) {
                /* "message" is the reply's last member: drop the reply's closing brace */
                size_t end = strlen(reply);
                if (end > 0 && reply[end - 1] == '}') reply[end - 1] = '\0';
                printf("correction\t%s\n", message + strlen("\"message\":"));
                fflush(stdout);
                seq = found;
            }
        }
    } else {
        fprintf(stderr, "warning: no answer from %s\n", command);
    }
    zmq_close(req);
    return seq;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PUBLISH COMMAND [COUNT [SERVER_PUB CLIENT_PUB CLIENT_SEC]]\n",
                argv[0]);
        return 2;
    }
    long count = argc > 3 ? strtol(argv[3], NULL, 10) : 0, new_ones = 0;
    if (argc > 6) {
        keys[0] = argv[4];
        keys[1] = argv[5];
        keys[2] = argv[6];
    }
    void *context = zmq_ctx_new();
    void *sub = make_socket(context, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    zmq_connect(sub, argv[1]); /* subscribe first, then ask */
    long last = ask_latest(context, argv[2], 0);
    char topic[64], body[65536];
    while (count == 0 || new_ones < count) {
        int t = zmq_recv(sub, topic, sizeof topic - 1, 0);
        int n = zmq_recv(sub, body, sizeof body - 1, 0);
        if (t < 0 || n < 0) break;
        topic[t < (int)sizeof topic - 1 ? t : (int)sizeof topic - 1] = '\0';
        body[n < (int)sizeof body - 1 ? n : (int)sizeof body - 1] = '\0';
        if (strcmp(topic, "correction") == 0) {
            long seq = number_after(body, "\"seq\":");
            if (seq > last) {
                printf("correction\t%s\n", body);
                fflush(stdout);
                last = seq;
                new_ones++;
            }
        } else if (strcmp(topic, "heartbeat") == 0 && number_after(body, "\"last_seq\":") > last) {
            long seq = ask_latest(context, argv[2], last);
            if (seq > last) new_ones++;
            last = seq;
        }
    }
    zmq_close(sub);
    zmq_ctx_term(context);
    return 0;
}
