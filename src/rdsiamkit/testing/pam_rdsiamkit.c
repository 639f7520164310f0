/*
 * pam_rdsiamkit: PAM module of the rdsiamkit RDS IAM emulator.
 *
 * PostgreSQL authenticates members of rds_iam with `pam pamservice=...`; this
 * module forwards the user name and the password (the IAM auth token) to the
 * emulator's verifier over a Unix socket and succeeds only on an explicit "OK".
 * Any error, timeout or unexpected answer fails closed.
 *
 * Unlike `pam_exec expose_authtok`, which truncates the password at 511 bytes,
 * the token is taken from pam_get_authtok (the PAM conversation) with no length
 * cap, so 1.2-2 kB tokens from temporary credentials (and longer) arrive whole.
 *
 * Module arguments:  socket=/abs/path/verifier.sock  [timeout=SECONDS]
 * Wire format: frames of a 4-byte big-endian length followed by that many
 * bytes; request = user frame + token frame; reply = one frame, "OK" or "NO".
 */
#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#define MAX_TOKEN_LENGTH 65535u
#define MAX_USER_LENGTH 1024u
#define DEFAULT_TIMEOUT_SECONDS 5

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_frame(int fd, const char *data, size_t len)
{
    unsigned char header[4];
    header[0] = (unsigned char)((len >> 24) & 0xff);
    header[1] = (unsigned char)((len >> 16) & 0xff);
    header[2] = (unsigned char)((len >> 8) & 0xff);
    header[3] = (unsigned char)(len & 0xff);
    if (write_all(fd, header, sizeof header) != 0)
        return -1;
    return write_all(fd, data, len);
}

/* Returns 1 when the verifier answered exactly "OK", 0 otherwise. */
static int ask_verifier(const char *path, int timeout, const char *user, const char *token)
{
    struct sockaddr_un addr;
    struct timeval tv;
    unsigned char header[4];
    char answer[2];
    uint32_t len;
    int fd, ok = 0;

    if (strlen(path) >= sizeof addr.sun_path)
        return 0;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    tv.tv_sec = timeout;
    tv.tv_usec = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        goto done;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        goto done;
    if (write_frame(fd, user, strlen(user)) != 0 || write_frame(fd, token, strlen(token)) != 0)
        goto done;
    if (read_all(fd, header, sizeof header) != 0)
        goto done;
    len = ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) |
          ((uint32_t)header[2] << 8) | (uint32_t)header[3];
    if (len != sizeof answer || read_all(fd, answer, sizeof answer) != 0)
        goto done;
    ok = answer[0] == 'O' && answer[1] == 'K';
done:
    close(fd);
    return ok;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    const char *socket_path = NULL;
    const char *user = NULL;
    const char *token = NULL;
    int timeout = DEFAULT_TIMEOUT_SECONDS;
    int i;

    (void)flags;
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "socket=", 7) == 0)
            socket_path = argv[i] + 7;
        else if (strncmp(argv[i], "timeout=", 8) == 0)
            timeout = atoi(argv[i] + 8);
    }
    if (socket_path == NULL || socket_path[0] != '/' || timeout <= 0)
        return PAM_AUTH_ERR;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL ||
        strlen(user) > MAX_USER_LENGTH)
        return PAM_AUTH_ERR;
    if (pam_get_authtok(pamh, PAM_AUTHTOK, &token, NULL) != PAM_SUCCESS || token == NULL ||
        strlen(token) > MAX_TOKEN_LENGTH)
        return PAM_AUTH_ERR;
    return ask_verifier(socket_path, timeout, user, token) ? PAM_SUCCESS : PAM_AUTH_ERR;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}

/* Authorization happened in pam_sm_authenticate (token and policy); the account is valid. */
PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
