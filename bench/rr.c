// SPDX-License-Identifier: Apache-2.0
/* Request/response benchmark: one TCP connection, 1-byte request, 1-byte response, as many round
 * trips as fit in the duration. Prints round trips per second. Built by bench/measure.ts (buildRr,
 * clang-16) into the benchmark's temporary directory.
 *
 *   rr server PORT
 *   rr client HOST PORT SECONDS     one connection, 1-byte request/response
 *   rr crr HOST PORT SECONDS        a new connection per request/response (connect, 1 byte, close)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int serve(int port)
{
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };

	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 16) < 0) {
		perror("rr server");
		return 1;
	}
	printf("listening %d\n", port);
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		char c;

		if (fd < 0)
			continue;
		nodelay(fd);
		while (read(fd, &c, 1) == 1)
			if (write(fd, &c, 1) != 1)
				break;
		close(fd);
	}
}

static int client(const char *host, int port, double seconds)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	long n = 0;
	double start, end;
	char c = 'x';

	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "rr client: bad address %s\n", host);
		return 2;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		perror("rr client connect");
		return 1;
	}
	nodelay(fd);
	start = now();
	end = start + seconds;
	do {
		for (int i = 0; i < 64; i++) {
			if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) {
				perror("rr client");
				return 1;
			}
			n++;
		}
	} while (now() < end);
	printf("%.1f\n", n / (now() - start));
	close(fd);
	return 0;
}

/* Connect, request, response, close: every round trip is a new flow through conntrack and policy. */
static int crr(const char *host, int port, double seconds)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	long n = 0;
	double start, end;
	char c = 'x';

	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "rr crr: bad address %s\n", host);
		return 2;
	}
	start = now();
	end = start + seconds;
	do {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		/* RST on close: no TIME_WAIT pile-up exhausting ports during the run. */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) {
			perror("rr crr");
			close(fd);
			return 1;
		}
		close(fd);
		n++;
	} while (now() < end);
	printf("%.1f\n", n / (now() - start));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "server") == 0)
		return serve(atoi(argv[2]));
	if (argc == 5 && strcmp(argv[1], "client") == 0)
		return client(argv[2], atoi(argv[3]), atof(argv[4]));
	if (argc == 5 && strcmp(argv[1], "crr") == 0)
		return crr(argv[2], atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: rr server PORT | rr client HOST PORT SECONDS | rr crr HOST PORT SECONDS\n");
	return 2;
}
