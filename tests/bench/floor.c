/* The floor: the least a server for the qemu-pr-helper wire protocol must do per request.
 *
 * One thread, level-triggered epoll, blocking sockets, no checks: accept and send the feature
 * word; read the client's; then per request recvmsg the 16-byte CDB with its fd, read the
 * PR OUT parameter list, SG_IO, close the fd, one write of the reply. A slow device stalls
 * every client and a partial read blocks the loop: it is a benchmark reference, not a helper.
 * compare.py builds it with `gcc -O2` and runs it as `floor -k SOCKET`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <scsi/sg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SENSE_SIZE 96
#define DATA_SIZE 8192
#define HEADER_SIZE (8 + SENSE_SIZE)

static unsigned char reply[HEADER_SIZE + DATA_SIZE];

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* Returns 0 to keep the connection, -1 to close it. */
static int serve(int sock)
{
    unsigned char cdb[16];
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { cdb, sizeof cdb };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control, .msg_controllen = sizeof control };
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != sizeof cdb)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);

    uint32_t len = (uint32_t)cdb[7] << 8 | cdb[8];
    int out = cdb[0] == 0x5f;
    unsigned char *data = reply + HEADER_SIZE;
    if (out && len && recv(sock, data, len, MSG_WAITALL) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    unsigned char *sense = reply + 8;
    memset(sense, 0, SENSE_SIZE);
    struct sg_io_hdr io = {
        .interface_id = 'S',
        .dxfer_direction = out ? SG_DXFER_TO_DEV : SG_DXFER_FROM_DEV,
        .cmd_len = 10,
        .mx_sb_len = SENSE_SIZE,
        .dxfer_len = len,
        .dxferp = data,
        .cmdp = cdb,
        .sbp = sense,
        .timeout = 30000,
    };
    uint32_t status, size = 0;
    if (ioctl(fd, SG_IO, &io) < 0) {
        /* CHECK CONDITION, fixed sense: ABORTED COMMAND, I/O process terminated. */
        status = 2;
        sense[0] = 0x70; sense[2] = 0x0b; sense[7] = 10; sense[13] = 0x06;
    } else {
        status = io.status;
        if (!out && status == 0)
            size = len - io.resid;
    }
    close(fd);
    put_be32(reply, status);
    put_be32(reply + 4, size);
    return send(sock, reply, HEADER_SIZE + size, MSG_NOSIGNAL) == HEADER_SIZE + size ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "-k")) {
        fprintf(stderr, "usage: %s -k SOCKET\n", argv[0]);
        return 2;
    }
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, argv[2], sizeof addr.sun_path - 1);
    int lst = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(argv[2]);
    if (lst < 0 || bind(lst, (struct sockaddr *)&addr, sizeof addr) || listen(lst, 1024)) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lst };
    epoll_ctl(ep, EPOLL_CTL_ADD, lst, &ev);
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lst) {
                int s = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
                if (s < 0)
                    continue;
                unsigned char features[4] = { 0 };
                /* Feature word both ways; the client's answer is read blocking. */
                if (send(s, features, 4, MSG_NOSIGNAL) != 4 ||
                    recv(s, features, 4, MSG_WAITALL) != 4) {
                    close(s);
                    continue;
                }
                struct epoll_event cev = { .events = EPOLLIN, .data.fd = s };
                epoll_ctl(ep, EPOLL_CTL_ADD, s, &cev);
            } else if (serve(fd) < 0) {
                close(fd);
            }
        }
    }
}
