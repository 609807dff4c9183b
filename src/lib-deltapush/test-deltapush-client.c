/* Copyright (c) 2026 deltapush authors, see the included AUTHORS file */

#include "lib.h"
#include "ioloop.h"
#include "net.h"
#include "fd-util.h"
#include "strescape.h"
#include "write-full.h"
#include "unlink-directory.h"
#include "test-common.h"
#include "deltapush-compat.h"
#include "deltapush-protocol.h"
#include "deltapush-client.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>

/* A stand-in for the service in a child process, speaking the protocol
   with plain blocking I/O: it answers each request with OK and the
   request's user, so a reply shows which request it belongs to. */
enum fake_service_mode {
	FAKE_SERVICE_ECHO,
	/* close the connection after each reply (as the service's idle
	   timeout would) */
	FAKE_SERVICE_ECHO_CLOSE,
	/* read and never answer */
	FAKE_SERVICE_SILENT,
};

struct fake_service {
	char *dir;
	char *socket_path;
	pid_t pid;
};

static bool fake_service_line(int fd, const char *line,
			      enum fake_service_mode mode)
{
	const char *const *args = t_strsplit_tabescaped(line);
	const char *reply;

	if (strcmp(args[0], "VERSION") == 0)
		return TRUE;
	if (mode == FAKE_SERVICE_SILENT)
		return TRUE;
	reply = t_strdup_printf("OK\t%s\n", args[1] != NULL ? args[1] : "");
	if (write_full(fd, reply, strlen(reply)) < 0)
		return FALSE;
	return mode != FAKE_SERVICE_ECHO_CLOSE;
}

static void fake_service_conn(int fd, enum fake_service_mode mode)
{
	static const char version[] = "VERSION\tdeltapush\t2\t0\n";
	char line[1024];
	size_t used = 0;

	if (write_full(fd, version, sizeof(version) - 1) < 0)
		return;
	/* a byte at a time: the requests are few and short */
	while (used < sizeof(line) - 1 && read(fd, line + used, 1) == 1) {
		if (line[used] != '\n') {
			used++;
			continue;
		}
		line[used] = '\0';
		used = 0;
		if (!fake_service_line(fd, line, mode))
			return;
	}
}

static struct ioloop *test_ioloop;

static void fake_service_start(struct fake_service *service,
			       enum fake_service_mode mode)
{
	char dir[] = "/tmp/deltapush-client-test.XXXXXX";
	int listen_fd, fd;

	if (mkdtemp(dir) == NULL)
		i_fatal("mkdtemp() failed: %m");
	service->dir = i_strdup(dir);
	service->socket_path = i_strconcat(dir, "/deltapush", NULL);
	listen_fd = net_listen_unix(service->socket_path, 16);
	if (listen_fd < 0)
		i_fatal("net_listen_unix(%s) failed: %m", service->socket_path);
	service->pid = fork();
	if (service->pid < 0)
		i_fatal("fork() failed: %m");
	if (service->pid == 0) {
		fd_set_nonblock(listen_fd, FALSE);
		while ((fd = accept(listen_fd, NULL, NULL)) >= 0) {
			T_BEGIN {
				fake_service_conn(fd, mode);
			} T_END;
			i_close_fd(&fd);
		}
		_exit(0);
	}
	i_close_fd(&listen_fd);
	test_ioloop = io_loop_create();
}

static void fake_service_stop(struct fake_service *service)
{
	const char *error;

	deltapush_client_deinit();
	io_loop_destroy(&test_ioloop);
	(void)kill(service->pid, SIGKILL);
	(void)waitpid(service->pid, NULL, 0);
	if (unlink_directory(service->dir, UNLINK_DIRECTORY_FLAG_RMDIR,
			     &error) < 0)
		i_error("%s", error);
	i_free(service->dir);
	i_free(service->socket_path);
}

static struct deltapush_client_reply *
test_notify_send(const struct fake_service *service, const char *user,
		 unsigned int timeout_msecs)
{
	struct deltapush_request request = {
		.type = DELTAPUSH_REQUEST_NOTIFY,
		.user = user,
	};

	return deltapush_client_send(service->socket_path, timeout_msecs,
				     NULL, &request, TRUE);
}

/* The reply's first field (the user the fake service echoes), or the
   error. */
static const char *test_notify_finish(struct deltapush_client_reply **reply)
{
	const char *const *fields, *error;

	if (deltapush_client_finish(reply, &fields, &error) < 0)
		return t_strconcat("error: ", error, NULL);
	return fields[0];
}

static void test_deltapush_client_pipelined(void)
{
	struct fake_service service;
	struct deltapush_client_reply *a, *b;

	test_begin("client: pipelined requests get their own replies");
	fake_service_start(&service, FAKE_SERVICE_ECHO);
	a = test_notify_send(&service, "a", 10000);
	b = test_notify_send(&service, "b", 10000);
	test_assert_strcmp(test_notify_finish(&a), "a");
	test_assert_strcmp(test_notify_finish(&b), "b");
	/* finished out of order, too */
	a = test_notify_send(&service, "c", 10000);
	b = test_notify_send(&service, "d", 10000);
	test_assert_strcmp(test_notify_finish(&b), "d");
	test_assert_strcmp(test_notify_finish(&a), "c");
	test_assert(a == NULL && b == NULL);
	fake_service_stop(&service);
	test_end();
}

static void test_deltapush_client_abandon(void)
{
	struct fake_service service;
	struct deltapush_client_reply *a, *b;

	test_begin("client: an abandoned request's reply is dropped");
	fake_service_start(&service, FAKE_SERVICE_ECHO);
	a = test_notify_send(&service, "a", 10000);
	b = test_notify_send(&service, "b", 10000);
	deltapush_client_abandon(&a);
	test_assert(a == NULL);
	test_assert_strcmp(test_notify_finish(&b), "b");
	a = test_notify_send(&service, "c", 10000);
	deltapush_client_abandon(&a);
	b = test_notify_send(&service, "d", 10000);
	test_assert_strcmp(test_notify_finish(&b), "d");
	fake_service_stop(&service);
	test_end();
}

static void test_deltapush_client_closed_while_idle(void)
{
	struct fake_service service;
	struct deltapush_client_reply *a;
	unsigned int i;

	test_begin("client: a kept connection the service closed is replaced");
	fake_service_start(&service, FAKE_SERVICE_ECHO_CLOSE);
	for (i = 0; i < 3; i++) {
		a = test_notify_send(&service, "a", 10000);
		test_assert_strcmp_idx(test_notify_finish(&a), "a", i);
		/* let the close arrive before the next request */
		usleep(20000);
	}
	fake_service_stop(&service);
	test_end();
}

static void test_deltapush_client_timeout(void)
{
	struct fake_service service;
	struct deltapush_client_reply *a;
	const char *const *fields, *error;

	test_begin("client: no reply in time, then NOTIFY is suspended");
	fake_service_start(&service, FAKE_SERVICE_SILENT);
	a = test_notify_send(&service, "a", 100);
	test_assert(str_begins_with(test_notify_finish(&a),
				    "error: Timed out after 100 ms"));
	a = test_notify_send(&service, "b", 100);
	test_assert(deltapush_client_finish(&a, &fields, &error) ==
		    DELTAPUSH_CLIENT_SUSPENDED);
	fake_service_stop(&service);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_deltapush_client_pipelined,
		test_deltapush_client_abandon,
		test_deltapush_client_closed_while_idle,
		/* last: it leaves NOTIFY suspended */
		test_deltapush_client_timeout,
		NULL
	};
	return test_run(test_functions);
}
