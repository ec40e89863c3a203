/* Client core of the simulated HCS DLLs: connection to the daemon, call marshalling,
 * handle and callback registry, gen3 operations, event delivery on a native thread.
 *
 * Every simulated DLL links its own copy of this file (static state per DLL), just as every
 * real DLL keeps its own state. Build flags: WC_DLL_NAME, WC_PROFILE, WC_STRING_TAG.
 */
#define _GNU_SOURCE
#include "wcsim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef WC_DLL_NAME
#error "WC_DLL_NAME must be defined"
#endif
#ifndef WC_PROFILE
#error "WC_PROFILE must be defined"
#endif
#ifndef WC_STRING_TAG
#define WC_STRING_TAG WC_TAG_COTASKMEM
#endif

#define WC_MAX_FDS 16
#define WC_MAX_ARGS 16
#define WC_MAX_PENDING_EVENTS 256
#define WC_BUCKETS 256

/* ---- byte buffers and the tagged value format -------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void wb_put(wbuf *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void wb_u8(wbuf *b, uint8_t v) { wb_put(b, &v, 1); }
static void wb_u16(wbuf *b, uint16_t v) { wb_put(b, &v, 2); }
static void wb_u32(wbuf *b, uint32_t v) { wb_put(b, &v, 4); }
static void wb_u64(wbuf *b, uint64_t v) { wb_put(b, &v, 8); }

static void wv_null(wbuf *b) { wb_u8(b, 'N'); }
static void wv_int(wbuf *b, int64_t v) {
    wb_u8(b, 'i');
    wb_u64(b, (uint64_t)v);
}
size_t wc_wcslen(PCWSTR s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
static void wv_str(wbuf *b, PCWSTR s) {
    if (!s) {
        wv_null(b);
        return;
    }
    size_t n = wc_wcslen(s) * 2;
    wb_u8(b, 's');
    wb_u32(b, (uint32_t)n);
    wb_put(b, s, n);
}
static void wv_bytes(wbuf *b, const void *p, uint32_t n) {
    if (!p) {
        wv_null(b);
        return;
    }
    wb_u8(b, 'b');
    wb_u32(b, n);
    wb_put(b, p, n);
}
static void wv_guid(wbuf *b, const GUID *g) {
    if (!g) {
        wv_null(b);
        return;
    }
    wb_u8(b, 'g');
    wb_put(b, g, 16);
}
static void wv_list(wbuf *b, uint32_t n) {
    wb_u8(b, 'l');
    wb_u32(b, n);
}

typedef struct {
    char tag;
    int64_t i;
    const uint8_t *p;
    uint32_t n;
} wval;

static int rd_bytes(const uint8_t **cur, const uint8_t *end, void *out, size_t n) {
    if ((size_t)(end - *cur) < n) return -1;
    memcpy(out, *cur, n);
    *cur += n;
    return 0;
}

/* Reads one value; a list yields its count, its items follow as separate values. */
static int rd_value(const uint8_t **cur, const uint8_t *end, wval *v) {
    uint8_t tag;
    memset(v, 0, sizeof *v);
    if (rd_bytes(cur, end, &tag, 1)) return -1;
    v->tag = (char)tag;
    switch (tag) {
    case 'N':
        return 0;
    case 'i': {
        uint64_t x;
        if (rd_bytes(cur, end, &x, 8)) return -1;
        v->i = (int64_t)x;
        return 0;
    }
    case 's':
    case 'b': {
        uint32_t n;
        if (rd_bytes(cur, end, &n, 4)) return -1;
        if ((size_t)(end - *cur) < n) return -1;
        v->p = *cur;
        v->n = n;
        *cur += n;
        return 0;
    }
    case 'g':
        if ((size_t)(end - *cur) < 16) return -1;
        v->p = *cur;
        v->n = 16;
        *cur += 16;
        return 0;
    case 'l': {
        uint32_t n;
        if (rd_bytes(cur, end, &n, 4)) return -1;
        v->i = n;
        return 0;
    }
    default:
        return -1;
    }
}

/* ---- allocator-tagged strings -------------------------------------------------------------- */

PWSTR wc_alloc_wstr(const uint8_t *utf16le, size_t nbytes) {
    uint64_t *h = malloc(16 + nbytes + 2);
    if (!h) return NULL;
    h[0] = WC_STRING_TAG;
    h[1] = nbytes + 2;
    uint8_t *p = (uint8_t *)(h + 2);
    memcpy(p, utf16le, nbytes);
    p[nbytes] = 0;
    p[nbytes + 1] = 0;
    return (PWSTR)p;
}

void wc_free_wstr(PWSTR s) {
    if (!s) return;
    uint64_t *h = (uint64_t *)s - 2;
    h[0] = WC_TAG_FREED;
    free(h);
}

static WCHAR *dup_wstr_plain(const uint8_t *utf16le, size_t nbytes) {
    WCHAR *p = malloc(nbytes + 2);
    if (!p) return NULL;
    memcpy(p, utf16le, nbytes);
    p[nbytes / 2] = 0;
    return p;
}

/* ---- handle values ------------------------------------------------------------------------ */

void *wc_handle_value(uint64_t id) { return id ? (void *)(uintptr_t)((id << 4) | 0x8) : NULL; }
uint64_t wc_handle_id(const void *handle) {
    uintptr_t v = (uintptr_t)handle;
    return (v & 0xF) == 0x8 ? (uint64_t)(v >> 4) : 0;
}
void *wc_op_value(uint64_t id) { return id ? (void *)(uintptr_t)((id << 4) | 0x4) : NULL; }
uint64_t wc_op_id(const void *op) {
    uintptr_t v = (uintptr_t)op;
    return (v & 0xF) == 0x4 ? (uint64_t)(v >> 4) : 0;
}

/* ---- global state -------------------------------------------------------------------------- */

typedef struct wc_pending {
    struct wc_pending *next;
    uint64_t id;
    int done;
    uint8_t *msg;
    uint32_t len;
    int fds[WC_MAX_FDS];
    int nfds;
} wc_pending;

typedef struct wc_conn {
    int fd;
    int dead;
    wc_pending *pending;
} wc_conn;

typedef struct wc_event {
    struct wc_event *next;
    char kind;       /* 'N' notification, 'V' event, 'K' hcn, 'c' op completion callback */
    uint64_t target; /* handle id, registration id or op id */
    uint32_t type;
    int32_t status;
    WCHAR *data;
} wc_event;

typedef struct wc_reg {
    struct wc_reg *next;
    uint64_t hid;    /* handle id (or registration id for HCN service callbacks) */
    uint64_t reg_id; /* gen2 registration handle id, 0 when none */
    HCS_NOTIFICATION_CALLBACK ncb;
    HCS_EVENT_CALLBACK ecb;
    HCN_NOTIFICATION_CALLBACK hcb;
    void *ctx;
    wc_event *pend_head, *pend_tail;
    int npend;
} wc_reg;

typedef struct wc_op {
    struct wc_op *next;
    uint64_t id;
    void *ctx;
    HCS_OPERATION_COMPLETION cb;
    int state; /* 0 new, 1 running, 2 done */
    int type;
    HRESULT hr;
    uint8_t *result;
    uint32_t result_len;
    int has_result;
    int has_pi;
    uint32_t pid;
    int fds[3];
    uint64_t sys_hid, proc_hid;
} wc_op;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* responses, operation completions, dispatch state */
    pthread_mutex_t send_lock;
    wc_conn *conn;
    uint64_t next_req;
    uint64_t next_op;
    wc_reg *regs[WC_BUCKETS];
    wc_op *ops[WC_BUCKETS];
    wc_event *evq_head, *evq_tail;
    pthread_cond_t evcond;
    int ev_started;
    pthread_t ev_thread;
    uint64_t dispatching; /* target id whose callback is running, 0 when idle */
    char dispatch_kind;
} G;

static void init_sync(void) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&G.lock, NULL);
    pthread_mutex_init(&G.send_lock, NULL);
    pthread_cond_init(&G.cond, &ca);
    pthread_cond_init(&G.evcond, &ca);
    pthread_condattr_destroy(&ca);
}

#ifdef WC_SYNC_CALLS
static void sync_after_fork(void);
#endif

static void after_fork_child(void) {
    /* The child shares the parent's socket description: drop our reference and start afresh. */
    if (G.conn && G.conn->fd >= 0) close(G.conn->fd);
    memset(&G, 0, sizeof G);
    init_sync();
#ifdef WC_SYNC_CALLS
    sync_after_fork();
#endif
}

__attribute__((constructor)) static void wc_init(void) {
    init_sync();
    G.next_req = 1;
    G.next_op = 1;
    pthread_atfork(NULL, NULL, after_fork_child);
}

/* ---- registry helpers (G.lock held) ------------------------------------------------------- */

static wc_reg *reg_find(uint64_t hid) {
    for (wc_reg *r = G.regs[hid % WC_BUCKETS]; r; r = r->next)
        if (r->hid == hid) return r;
    return NULL;
}
static wc_reg *reg_get(uint64_t hid) {
    wc_reg *r = reg_find(hid);
    if (r) return r;
    r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->hid = hid;
    r->next = G.regs[hid % WC_BUCKETS];
    G.regs[hid % WC_BUCKETS] = r;
    return r;
}
static void event_free(wc_event *e) {
    free(e->data);
    free(e);
}
static void reg_remove(uint64_t hid) {
    wc_reg **pp = &G.regs[hid % WC_BUCKETS];
    while (*pp) {
        if ((*pp)->hid == hid) {
            wc_reg *r = *pp;
            *pp = r->next;
            while (r->pend_head) {
                wc_event *e = r->pend_head;
                r->pend_head = e->next;
                event_free(e);
            }
            free(r);
            return;
        }
        pp = &(*pp)->next;
    }
}
static wc_op *op_find(uint64_t id) {
    for (wc_op *o = G.ops[id % WC_BUCKETS]; o; o = o->next)
        if (o->id == id) return o;
    return NULL;
}

/* Waits until no callback for `target` runs on the event thread (unless we are that thread). */
static void wait_not_dispatching(uint64_t target) {
    if (G.ev_started && pthread_equal(pthread_self(), G.ev_thread)) return;
    while (G.dispatching == target) pthread_cond_wait(&G.cond, &G.lock);
}

/* ---- event thread -------------------------------------------------------------------------- */

static void evq_push_locked(wc_event *e, int front) {
    e->next = NULL;
    if (front) {
        e->next = G.evq_head;
        G.evq_head = e;
        if (!G.evq_tail) G.evq_tail = e;
    } else {
        if (G.evq_tail)
            G.evq_tail->next = e;
        else
            G.evq_head = e;
        G.evq_tail = e;
    }
    pthread_cond_signal(&G.evcond);
}

static void *event_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&G.lock);
    for (;;) {
        while (!G.evq_head) pthread_cond_wait(&G.evcond, &G.lock);
        wc_event *e = G.evq_head;
        G.evq_head = e->next;
        if (!G.evq_head) G.evq_tail = NULL;
        if (e->kind == 'c') {
            wc_op *o = op_find(e->target);
            if (o && o->cb) {
                HCS_OPERATION_COMPLETION cb = o->cb;
                void *ctx = o->ctx;
                G.dispatching = e->target;
                G.dispatch_kind = 'c';
                pthread_mutex_unlock(&G.lock);
                cb(wc_op_value(e->target), ctx);
                pthread_mutex_lock(&G.lock);
                G.dispatching = 0;
                pthread_cond_broadcast(&G.cond);
            }
            event_free(e);
            continue;
        }
        wc_reg *r = reg_find(e->target);
        if (!r) {
            event_free(e);
            continue;
        }
        int has_cb = (e->kind == 'N' && r->ncb) || (e->kind == 'V' && r->ecb) || (e->kind == 'K' && r->hcb);
        if (!has_cb) {
            /* No callback yet: keep it until one is registered (bounded). */
            if (r->npend >= WC_MAX_PENDING_EVENTS) {
                wc_event *old = r->pend_head;
                r->pend_head = old->next;
                if (!r->pend_head) r->pend_tail = NULL;
                r->npend--;
                event_free(old);
            }
            e->next = NULL;
            if (r->pend_tail)
                r->pend_tail->next = e;
            else
                r->pend_head = e;
            r->pend_tail = e;
            r->npend++;
            continue;
        }
        G.dispatching = e->target;
        G.dispatch_kind = e->kind;
        if (e->kind == 'N' || e->kind == 'K') {
            HCS_NOTIFICATION_CALLBACK cb = e->kind == 'N' ? r->ncb : (HCS_NOTIFICATION_CALLBACK)r->hcb;
            void *ctx = r->ctx;
            pthread_mutex_unlock(&G.lock);
            cb(e->type, ctx, e->status, e->data);
        } else {
            HCS_EVENT ev;
            ev.Type = e->type;
            ev.EventData = e->data;
            ev.Operation = NULL;
            HCS_EVENT_CALLBACK cb = r->ecb;
            void *ctx = r->ctx;
            pthread_mutex_unlock(&G.lock);
            cb(&ev, ctx);
        }
        pthread_mutex_lock(&G.lock);
        G.dispatching = 0;
        pthread_cond_broadcast(&G.cond);
        event_free(e);
    }
    return NULL;
}

static void ensure_event_thread_locked(void) {
    if (G.ev_started) return;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&G.ev_thread, &a, event_main, NULL) == 0) G.ev_started = 1;
    pthread_attr_destroy(&a);
}

/* Moves events held for a handle back to the front of the queue once a callback exists. */
static void flush_pending_locked(wc_reg *r) {
    if (!r->pend_head) return;
    r->pend_tail->next = G.evq_head;
    G.evq_head = r->pend_head;
    if (!G.evq_tail) G.evq_tail = r->pend_tail;
    r->pend_head = r->pend_tail = NULL;
    r->npend = 0;
    pthread_cond_signal(&G.evcond);
}

/* ---- socket I/O ---------------------------------------------------------------------------- */

static int read_full(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r == 0) return -1;
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int safe_fd(int fd) {
    /* fd 0 would read as a NULL HANDLE: move it. */
    if (fd == 0) {
        int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        return n;
    }
    return fd;
}

static uint8_t *read_message(int fd, uint32_t *len, int *fds, int *nfds) {
    uint32_t hdr;
    char cbuf[CMSG_SPACE(sizeof(int) * WC_MAX_FDS)];
    struct iovec iov = {&hdr, 4};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    *nfds = 0;
    ssize_t r;
    do {
        r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) return NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int *src = (int *)CMSG_DATA(c);
            for (int i = 0; i < n; i++) {
                if (*nfds < WC_MAX_FDS)
                    fds[(*nfds)++] = safe_fd(src[i]);
                else
                    close(src[i]);
            }
        }
    }
    if (r < 4 && read_full(fd, (uint8_t *)&hdr + r, 4 - (size_t)r)) return NULL;
    uint8_t *msg = malloc(hdr ? hdr : 1);
    if (!msg) return NULL;
    if (read_full(fd, msg, hdr)) {
        free(msg);
        return NULL;
    }
    *len = hdr;
    return msg;
}

static int send_message(int fd, const uint8_t *payload, size_t n) {
    uint32_t len = (uint32_t)n;
    int rc = 0;
    pthread_mutex_lock(&G.send_lock);
    struct iovec iov[2] = {{&len, 4}, {(void *)payload, n}};
    size_t total = 4 + n, sent = 0;
    while (sent < total) {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        struct iovec v[2];
        int cnt = 0;
        size_t skip = sent;
        for (int i = 0; i < 2; i++) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            v[cnt].iov_base = (uint8_t *)iov[i].iov_base + skip;
            v[cnt].iov_len = iov[i].iov_len - skip;
            skip = 0;
            cnt++;
        }
        m.msg_iov = v;
        m.msg_iovlen = (size_t)cnt;
        ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = -1;
            break;
        }
        sent += (size_t)r;
    }
    pthread_mutex_unlock(&G.send_lock);
    return rc;
}

/* ---- incoming messages ----------------------------------------------------------------------- */

static void take_fds(int *fds, int nfds) {
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0) close(fds[i]);
}

static wc_event *make_event(char kind, uint64_t target, uint32_t type, int32_t status, const wval *data) {
    wc_event *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->kind = kind;
    e->target = target;
    e->type = type;
    e->status = status;
    if (data && data->tag == 's') e->data = dup_wstr_plain(data->p, data->n);
    return e;
}

static void handle_event(const uint8_t *msg, uint32_t len, int *fds, int nfds) {
    const uint8_t *cur = msg + 1, *end = msg + len;
    uint8_t kind;
    uint16_t count;
    wval v[8];
    if (rd_bytes(&cur, end, &kind, 1) || rd_bytes(&cur, end, &count, 2) || count > 8) {
        take_fds(fds, nfds);
        return;
    }
    for (int i = 0; i < count; i++)
        if (rd_value(&cur, end, &v[i])) {
            take_fds(fds, nfds);
            return;
        }
    pthread_mutex_lock(&G.lock);
    if (kind == WC_EV_COMPLETION && count >= 6) {
        wc_op *o = op_find((uint64_t)v[0].i);
        if (!o) {
            pthread_mutex_unlock(&G.lock);
            take_fds(fds, nfds);
            return;
        }
        o->hr = (HRESULT)v[1].i;
        free(o->result);
        o->result = NULL;
        o->has_result = v[2].tag == 's';
        if (o->has_result) {
            o->result = malloc(v[2].n ? v[2].n : 1);
            if (o->result) memcpy(o->result, v[2].p, v[2].n);
            o->result_len = v[2].n;
        }
        for (int i = 0; i < 3; i++) {
            if (o->fds[i] >= 0) close(o->fds[i]);
            o->fds[i] = -1;
        }
        o->has_pi = v[3].tag == 'i';
        int next = 0;
        if (o->has_pi) {
            uint64_t pi = (uint64_t)v[3].i;
            o->pid = (uint32_t)pi;
            for (int i = 0; i < 3; i++)
                if ((pi >> 32) & (1u << i)) o->fds[i] = next < nfds ? fds[next++] : -1;
        }
        for (; next < nfds; next++) close(fds[next]);
        if (v[4].tag == 'i') o->sys_hid = (uint64_t)v[4].i;
        if (v[5].tag == 'i') o->proc_hid = (uint64_t)v[5].i;
        o->state = 2;
        pthread_cond_broadcast(&G.cond);
        if (o->cb) {
            wc_event *e = make_event('c', o->id, 0, 0, NULL);
            if (e) evq_push_locked(e, 0);
        }
        pthread_mutex_unlock(&G.lock);
        return;
    }
    take_fds(fds, nfds);
    wc_event *e = NULL;
    if (kind == WC_EV_NOTIFICATION && count >= 4)
        e = make_event('N', (uint64_t)v[0].i, (uint32_t)v[1].i, (int32_t)v[2].i, &v[3]);
    else if (kind == WC_EV_EVENT && count >= 3)
        e = make_event('V', (uint64_t)v[0].i, (uint32_t)v[1].i, 0, &v[2]);
    else if (kind == WC_EV_HCN && count >= 4)
        e = make_event('K', (uint64_t)v[0].i, (uint32_t)v[1].i, (int32_t)v[2].i, &v[3]);
    if (e && reg_find(e->target))
        evq_push_locked(e, 0);
    else if (e)
        event_free(e);
    pthread_mutex_unlock(&G.lock);
}

/* The service went away: fail every waiter and tell every callback, as HCS does. */
static void on_disconnect_locked(wc_conn *c) {
    c->dead = 1;
    if (G.conn == c) G.conn = NULL;
    for (wc_pending *p = c->pending; p; p = p->next) p->done = 1;
    for (int b = 0; b < WC_BUCKETS; b++) {
        for (wc_op *o = G.ops[b]; o; o = o->next) {
            if (o->state == 1) {
                o->state = 2;
                o->hr = HCS_E_SERVICE_DISCONNECT;
                if (o->cb) {
                    wc_event *e = make_event('c', o->id, 0, 0, NULL);
                    if (e) evq_push_locked(e, 0);
                }
            }
        }
        for (wc_reg *r = G.regs[b]; r; r = r->next) {
            wc_event *e = NULL;
            if (r->ncb)
                e = make_event('N', r->hid, 0x01000000, HCS_E_SERVICE_DISCONNECT, NULL);
            else if (r->ecb)
                e = make_event('V', r->hid, 0x02000000, 0, NULL);
            else if (r->hcb)
                e = make_event('K', r->hid, 0x01000000, HCS_E_SERVICE_DISCONNECT, NULL);
            if (e) evq_push_locked(e, 0);
        }
    }
    pthread_cond_broadcast(&G.cond);
}

static void *reader_main(void *arg) {
    wc_conn *c = arg;
    for (;;) {
        int fds[WC_MAX_FDS];
        int nfds = 0;
        uint32_t len = 0;
        uint8_t *msg = read_message(c->fd, &len, fds, &nfds);
        if (!msg) {
            take_fds(fds, nfds);
            break;
        }
        if (len >= 9 && msg[0] == 'R') {
            uint64_t id;
            memcpy(&id, msg + 1, 8);
            pthread_mutex_lock(&G.lock);
            wc_pending *p = c->pending;
            while (p && p->id != id) p = p->next;
            if (p) {
                p->msg = msg;
                p->len = len;
                memcpy(p->fds, fds, sizeof(int) * (size_t)nfds);
                p->nfds = nfds;
                p->done = 1;
                pthread_cond_broadcast(&G.cond);
                msg = NULL;
                nfds = 0;
            }
            pthread_mutex_unlock(&G.lock);
            take_fds(fds, nfds);
            free(msg);
        } else if (len >= 1 && msg[0] == 'E') {
            handle_event(msg, len, fds, nfds);
            free(msg);
        } else {
            take_fds(fds, nfds);
            free(msg);
        }
    }
    pthread_mutex_lock(&G.lock);
    on_disconnect_locked(c);
    int fd = c->fd;
    c->fd = -1;
    pthread_mutex_unlock(&G.lock);
    close(fd);
    return NULL;
}

/* ---- connecting ---------------------------------------------------------------------------- */

/* The socket path is in a file next to this library: <system dir>/hcs-service. */
static int service_path(char *out, size_t cap) {
    Dl_info info;
    if (!dladdr((void *)&service_path, &info) || !info.dli_fname) return -1;
    char self[4096];
    snprintf(self, sizeof self, "%s", info.dli_fname);
    char file[4200];
    snprintf(file, sizeof file, "%s/hcs-service", dirname(self));
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    if (!fgets(out, (int)cap, f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    return out[0] ? 0 : -1;
}

static void encode_ascii_str(wbuf *b, const char *s) {
    /* Strings on the wire are UTF-16LE. */
    size_t n = strlen(s);
    wb_u8(b, 's');
    wb_u32(b, (uint32_t)(n * 2));
    for (size_t i = 0; i < n; i++) wb_u16(b, (uint16_t)(unsigned char)s[i]);
}

/* A connection to the service that has said hello: a socket, or -1. */
static int connect_service(void) {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (service_path(path, sizeof path)) return -1;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa)) {
        close(s);
        return -1;
    }
    wbuf b = {0};
    wb_u8(&b, 'H');
    encode_ascii_str(&b, WC_DLL_NAME);
    encode_ascii_str(&b, WC_PROFILE);
    wv_int(&b, (int64_t)getpid());
    if (b.oom || send_message(s, b.p, b.n)) {
        free(b.p);
        close(s);
        return -1;
    }
    free(b.p);
    return s;
}

/* A new connection to the service (NULL when there is none to be had). */
static wc_conn *new_conn(void) {
    int s = connect_service();
    if (s < 0) return NULL;
    wc_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(s);
        return NULL;
    }
    c->fd = s;
    return c;
}

#ifndef WC_SYNC_CALLS
static wc_conn *get_conn_locked(void) {
    if (G.conn && !G.conn->dead) return G.conn;
    wc_conn *c = new_conn();
    if (!c) return NULL;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, reader_main, c)) {
        pthread_attr_destroy(&a);
        close(c->fd);
        free(c);
        return NULL;
    }
    pthread_attr_destroy(&a);
    ensure_event_thread_locked();
    G.conn = c;
    return c;
}
#endif

/* ---- calls ----------------------------------------------------------------------------------- */

typedef struct {
    char c;
    uint64_t u;
    const void *p;
    uint32_t n;
    void *out;
} warg;

static int is_out(char c) { return c >= 'A' && c <= 'Z' && c != 'L'; }

static int collect_args(const char *fmt, va_list ap, warg *a) {
    int na = 0;
    for (const char *f = fmt; *f && na < WC_MAX_ARGS; f++) {
        warg *x = &a[na++];
        memset(x, 0, sizeof *x);
        x->c = *f;
        switch (*f) {
        case 's':
        case 'h':
        case 'o':
        case 'g':
        case 'd':
        case 'x':
            x->p = va_arg(ap, const void *);
            break;
        case 'u':
            x->u = va_arg(ap, unsigned int);
            break;
        case 'q':
            x->u = va_arg(ap, uint64_t);
            break;
        case 'L':
        case 'b':
            x->p = va_arg(ap, const void *);
            x->n = va_arg(ap, unsigned int);
            break;
        default:
            x->out = va_arg(ap, void *);
            break;
        }
    }
    return na;
}

static HRESULT validate_args(const warg *a, int na) {
    for (int i = 0; i < na; i++) {
        if (a[i].c == 'd') {
            const DriverInfo *di = a[i].p;
            /* vmcompute dereferences both: a NULL here is a binding bug worth reporting. */
            if (!di || !di->HomeDir) return E_POINTER;
        }
        if (a[i].c == 'L' && a[i].n && !a[i].p) return E_POINTER;
        if (a[i].c == 'b' && a[i].n && !a[i].p) return E_POINTER;
    }
    return S_OK;
}

static void encode_request(wbuf *b, char type, uint64_t id, const char *fn, const warg *a, int na) {
    wb_u8(b, (uint8_t)type);
    wb_u64(b, id);
    wb_u16(b, (uint16_t)strlen(fn));
    wb_put(b, fn, strlen(fn));
    wb_u16(b, (uint16_t)na);
    for (int i = 0; i < na; i++) {
        const warg *x = &a[i];
        switch (x->c) {
        case 's':
            wv_str(b, x->p);
            break;
        case 'u':
        case 'q':
            wv_int(b, (int64_t)x->u);
            break;
        case 'h':
            wv_int(b, (int64_t)wc_handle_id(x->p));
            break;
        case 'o':
            wv_int(b, (int64_t)wc_op_id(x->p));
            break;
        case 'g':
            wv_guid(b, x->p);
            break;
        case 'x':
            wv_int(b, x->p != NULL);
            break;
        case 'b':
            wv_bytes(b, x->p, x->n);
            break;
        case 'd': {
            const DriverInfo *di = x->p;
            wv_list(b, 2);
            wv_int(b, di->Flavour);
            wv_str(b, di->HomeDir);
            break;
        }
        case 'L': {
            const WC_LAYER_DESCRIPTOR *d = x->p;
            wv_list(b, x->n);
            for (uint32_t k = 0; k < x->n; k++) {
                wv_list(b, 3);
                wv_guid(b, &d[k].LayerId);
                wv_int(b, d[k].Flags);
                wv_str(b, d[k].Path);
            }
            break;
        }
        default: /* an out parameter: tell the daemon whether the caller wants it */
            wv_int(b, x->out != NULL);
            break;
        }
    }
}

static void write_outs(const uint8_t *cur, const uint8_t *end, warg *a, int na, int *fds, int nfds) {
    int next_fd = 0;
    for (int i = 0; i < na; i++) {
        warg *x = &a[i];
        if (!is_out(x->c)) continue;
        wval v;
        if (rd_value(&cur, end, &v)) break;
        switch (x->c) {
        case 'S':
            if (x->out) *(PWSTR *)x->out = v.tag == 's' ? wc_alloc_wstr(v.p, v.n) : NULL;
            break;
        case 'H':
            if (x->out) {
                uint64_t id = v.tag == 'i' ? (uint64_t)v.i : 0;
                *(void **)x->out = wc_handle_value(id);
                if (id) {
                    pthread_mutex_lock(&G.lock);
                    reg_get(id);
                    pthread_mutex_unlock(&G.lock);
                }
            }
            break;
        case 'I':
            if (x->out && v.tag == 'i') *(DWORD *)x->out = (DWORD)v.i;
            break;
        case 'B':
            if (x->out && v.tag == 'i') *(BOOL *)x->out = v.i != 0;
            break;
        case 'Q':
            if (x->out && v.tag == 'i') *(UINT64 *)x->out = (UINT64)v.i;
            break;
        case 'G':
            if (x->out && v.tag == 'g') memcpy(x->out, v.p, 16);
            break;
        case 'P': {
            HCS_PROCESS_INFORMATION *pi = x->out;
            if (v.tag != 'i') break;
            uint64_t packed = (uint64_t)v.i;
            HANDLE h[3] = {NULL, NULL, NULL};
            for (int k = 0; k < 3; k++)
                if ((packed >> 32) & (1u << k) && next_fd < nfds) h[k] = (HANDLE)(intptr_t)fds[next_fd++];
            if (pi) {
                pi->ProcessId = (DWORD)packed;
                pi->Reserved = 0;
                pi->StdInput = h[0];
                pi->StdOutput = h[1];
                pi->StdError = h[2];
            } else {
                for (int k = 0; k < 3; k++)
                    if (h[k]) close((int)(intptr_t)h[k]);
            }
            break;
        }
        case 'F':
            if (v.tag == 'i' && v.i && next_fd < nfds) {
                int fd = fds[next_fd++];
                if (x->out)
                    *(HANDLE *)x->out = (HANDLE)(intptr_t)fd;
                else
                    close(fd);
            } else if (x->out) {
                *(HANDLE *)x->out = NULL;
            }
            break;
        default:
            break;
        }
    }
    for (; next_fd < nfds; next_fd++) close(fds[next_fd]);
}

/* The answer to request ``id`` on the caller's own connection ``fd`` into ``out`` (anything
 * else read there meanwhile is dropped: nothing else is expected); 0, or -1 when it ended. */
static int read_answer(int fd, uint64_t id, wc_pending *out) {
    for (;;) {
        int fds[WC_MAX_FDS], nfds = 0;
        uint32_t len = 0;
        uint8_t *msg = read_message(fd, &len, fds, &nfds);
        if (!msg) {
            take_fds(fds, nfds);
            return -1;
        }
        uint64_t got = 0;
        if (len >= 9 && msg[0] == 'R') memcpy(&got, msg + 1, 8);
        if (got != id) {
            take_fds(fds, nfds);
            free(msg);
            continue;
        }
        out->msg = msg;
        out->len = len;
        memcpy(out->fds, fds, sizeof(int) * (size_t)nfds);
        out->nfds = nfds;
        out->done = 1;
        return 0;
    }
}

#ifdef WC_SYNC_CALLS
/* kernel32 and advapi32 get no notifications, so no reader thread: the caller sends and reads
 * its answer itself. Each thread has a connection of its own (closed when the thread ends), so
 * threads that open, write and delete files at once are served at once, as on Windows; the
 * service keeps a process's handles until its last connection goes. */
static pthread_key_t conn_key;
static pthread_once_t conn_key_once = PTHREAD_ONCE_INIT;
static __thread wc_conn *t_conn;

static void conn_free(void *p) {
    wc_conn *c = p;
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static void make_conn_key(void) { pthread_key_create(&conn_key, conn_free); }

/* Most answers come within tens of microseconds: look for one a little before sleeping, which
 * saves a wake-up (the larger part of a call's cost on a virtual machine). */
static void spin_until_readable(int fd, long max_ns) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 0) != 0) return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) > max_ns) return;
    }
}

static wc_conn *sync_conn(int *fresh) {
    *fresh = 0;
    if (t_conn) return t_conn;
    pthread_once(&conn_key_once, make_conn_key);
    wc_conn *c = new_conn();
    if (!c) return NULL;
    t_conn = c;
    pthread_setspecific(conn_key, c);
    *fresh = 1;
    return c;
}

static void sync_drop(void) {
    if (!t_conn) return;
    pthread_setspecific(conn_key, NULL);
    conn_free(t_conn);
    t_conn = NULL;
}

static void sync_after_fork(void) {
    /* The child shares the socket description of the forking thread's connection: let go of it. */
    if (t_conn) {
        close(t_conn->fd);
        free(t_conn);
        t_conn = NULL;
    }
}

static int sync_transact(const char *fn, const warg *a, int na, int oneway, wc_pending *out) {
    wc_conn *c = NULL;
    uint64_t id = 0;
    int rc = -1;
    for (int attempt = 0; attempt < 2 && rc != 0; attempt++) {
        /* A connection to a service that has since restarted fails on the first send: nothing
         * was delivered, so one new connection is tried. */
        int fresh;
        c = sync_conn(&fresh);
        if (!c) break;
        pthread_mutex_lock(&G.lock);
        id = G.next_req++;
        pthread_mutex_unlock(&G.lock);
        wbuf b = {0};
        encode_request(&b, oneway ? 'O' : 'Q', id, fn, a, na);
        rc = b.oom ? -1 : send_message(c->fd, b.p, b.n);
        free(b.p);
        if (rc != 0) {
            sync_drop();
            c = NULL;
            if (fresh || b.oom) break;
        }
    }
    if (!c) return -1;
    if (rc == 0 && !oneway) {
        spin_until_readable(c->fd, 150000);
        rc = read_answer(c->fd, id, out);
    }
    if (rc != 0) sync_drop();
    return rc;
}
#endif

/* A response's values written through the caller's out pointers; returns its status (the
 * message and its descriptors are taken over). */
static HRESULT finish_call(wc_pending *p, warg *a, int na) {
    const uint8_t *cur = p->msg + 9, *end = p->msg + p->len;
    uint64_t rawhr;
    uint16_t count;
    if (rd_bytes(&cur, end, &rawhr, 8) || rd_bytes(&cur, end, &count, 2)) {
        take_fds(p->fds, p->nfds);
        free(p->msg);
        return HCS_E_SERVICE_DISCONNECT;
    }
    write_outs(cur, end, a, na, p->fds, p->nfds);
    free(p->msg);
    return (HRESULT)(int64_t)rawhr;
}

static HRESULT callv(const char *fn, const char *fmt, va_list ap, int oneway) {
    warg a[WC_MAX_ARGS];
    int na = collect_args(fmt, ap, a);
    HRESULT hr = validate_args(a, na);
    if (hr < 0) return hr;
    /* Out strings are NULL unless the call sets them (callers free them unconditionally). */
    for (int i = 0; i < na; i++)
        if ((a[i].c == 'S' || a[i].c == 'H') && a[i].out) *(void **)a[i].out = NULL;
#ifdef WC_SYNC_CALLS
    wc_pending sp;
    memset(&sp, 0, sizeof sp);
    if (sync_transact(fn, a, na, oneway, &sp)) return HCS_E_SERVICE_DISCONNECT;
    if (oneway) return S_OK;
    return finish_call(&sp, a, na);
#else
    pthread_mutex_lock(&G.lock);
    wc_conn *c = get_conn_locked();
    uint64_t id = G.next_req++;
    if (!c) {
        pthread_mutex_unlock(&G.lock);
        return RPC_S_SERVER_UNAVAILABLE_HR;
    }
    wc_pending p;
    memset(&p, 0, sizeof p);
    p.id = id;
    if (!oneway) {
        p.next = c->pending;
        c->pending = &p;
    }
    int fd = c->fd;
    pthread_mutex_unlock(&G.lock);

    wbuf b = {0};
    encode_request(&b, oneway ? 'O' : 'Q', id, fn, a, na);
    int sent = b.oom ? -1 : send_message(fd, b.p, b.n);
    free(b.p);

    pthread_mutex_lock(&G.lock);
    if (!oneway) {
        if (sent == 0)
            while (!p.done) pthread_cond_wait(&G.cond, &G.lock);
        wc_pending **pp = &c->pending;
        while (*pp && *pp != &p) pp = &(*pp)->next;
        if (*pp) *pp = p.next;
    }
    pthread_mutex_unlock(&G.lock);
    if (oneway) return sent == 0 ? S_OK : HCS_E_SERVICE_DISCONNECT;
    if (sent != 0 || !p.msg) {
        take_fds(p.fds, p.nfds);
        free(p.msg);
        return sent != 0 && b.oom ? E_OUTOFMEMORY : HCS_E_SERVICE_DISCONNECT;
    }
    return finish_call(&p, a, na);
#endif
}

/* A reply takes over a response: its message, its descriptors, the status read from the head. */
static int reply_from(wc_reply *r, wc_pending *p) {
    r->msg = p->msg;
    r->len = p->len;
    r->nfds = p->nfds;
    for (int i = 0; i < p->nfds; i++) r->fds[i] = p->fds[i];
    r->cur = p->msg + 9;
    r->end = p->msg + p->len;
    uint64_t status;
    uint16_t count;
    if (rd_bytes(&r->cur, r->end, &status, 8) || rd_bytes(&r->cur, r->end, &count, 2)) {
        wc_reply_free(r);
        return -1;
    }
    r->status = (int64_t)status;
    return 0;
}

int wc_request(wc_reply *r, const char *fn, const char *fmt, ...) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < WC_MAX_FDS; i++) r->fds[i] = -1;
    warg a[WC_MAX_ARGS];
    va_list ap;
    va_start(ap, fmt);
    int na = collect_args(fmt, ap, a);
    va_end(ap);
#ifdef WC_SYNC_CALLS
    wc_pending sp;
    memset(&sp, 0, sizeof sp);
    if (sync_transact(fn, a, na, 0, &sp)) return -1;
    return reply_from(r, &sp);
#else
    pthread_mutex_lock(&G.lock);
    wc_conn *c = get_conn_locked();
    uint64_t id = G.next_req++;
    if (!c) {
        pthread_mutex_unlock(&G.lock);
        return -1;
    }
    wc_pending p;
    memset(&p, 0, sizeof p);
    p.id = id;
    p.next = c->pending;
    c->pending = &p;
    int fd = c->fd;
    pthread_mutex_unlock(&G.lock);

    wbuf b = {0};
    encode_request(&b, 'Q', id, fn, a, na);
    int sent = b.oom ? -1 : send_message(fd, b.p, b.n);
    free(b.p);

    pthread_mutex_lock(&G.lock);
    if (sent == 0)
        while (!p.done) pthread_cond_wait(&G.cond, &G.lock);
    wc_pending **pp = &c->pending;
    while (*pp && *pp != &p) pp = &(*pp)->next;
    if (*pp) *pp = p.next;
    pthread_mutex_unlock(&G.lock);
    if (sent != 0 || !p.msg) {
        take_fds(p.fds, p.nfds);
        free(p.msg);
        return -1;
    }
    return reply_from(r, &p);
#endif
}

int wc_reply_int(wc_reply *r, int64_t *out) {
    wval v;
    if (!r->cur || rd_value(&r->cur, r->end, &v)) return -1;
    if (v.tag == 'N') {
        *out = 0;
        return 0;
    }
    if (v.tag != 'i') return -1;
    *out = v.i;
    return 0;
}

int wc_reply_bytes(wc_reply *r, const uint8_t **p, uint32_t *n) {
    wval v;
    *p = NULL;
    *n = 0;
    if (!r->cur || rd_value(&r->cur, r->end, &v)) return -1;
    if (v.tag == 'N') return 0;
    if (v.tag != 'b' && v.tag != 's') return -1;
    *p = v.p;
    *n = v.n;
    return 0;
}

int wc_reply_fd(wc_reply *r) {
    if (r->next_fd >= r->nfds) return -1;
    int fd = r->fds[r->next_fd];
    r->fds[r->next_fd++] = -1;
    return fd;
}

void wc_reply_free(wc_reply *r) {
    for (int i = 0; i < r->nfds; i++)
        if (r->fds[i] >= 0) close(r->fds[i]);
    r->nfds = 0;
    free(r->msg);
    r->msg = NULL;
    r->cur = r->end = NULL;
}

HRESULT wc_call(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    HRESULT hr = callv(fn, fmt, ap, 0);
    va_end(ap);
    return hr;
}

void wc_oneway(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    (void)callv(fn, fmt, ap, 1);
    va_end(ap);
}

/* wc_call when ``wait``, else wc_oneway: a call whose answer is awaited only in some cases. */
HRESULT wc_call_waiting(int wait, const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    HRESULT hr = callv(fn, fmt, ap, !wait);
    va_end(ap);
    return hr;
}

/* A connection of its own (kernel32's journal of a leased folder): the socket, or -1. */
int wc_connect(void) { return connect_service(); }

static uint8_t *encode_on(size_t *n, char type, uint64_t *id_out, const char *fn, const char *fmt, va_list ap) {
    warg a[WC_MAX_ARGS];
    int na = collect_args(fmt, ap, a);
    if (validate_args(a, na) < 0) return NULL;
    pthread_mutex_lock(&G.lock);
    uint64_t id = G.next_req++;
    pthread_mutex_unlock(&G.lock);
    if (id_out) *id_out = id;
    wbuf b = {0};
    encode_request(&b, type, id, fn, a, na);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *n = b.n;
    return b.p;
}

/* A one-way call on the connection ``fd`` (the caller serialises its sends); 0 once sent. */
int wc_oneway_on(int fd, const char *fn, const char *fmt, ...) {
    size_t n = 0;
    va_list ap;
    va_start(ap, fmt);
    uint8_t *p = encode_on(&n, 'O', NULL, fn, fmt, ap);
    va_end(ap);
    int rc = p ? send_message(fd, p, n) : -1;
    free(p);
    return rc;
}

/* A one-way call encoded, not sent: the message (without its length), malloc'd, or NULL. */
uint8_t *wc_encode_oneway(size_t *n, const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    uint8_t *p = encode_on(n, 'O', NULL, fn, fmt, ap);
    va_end(ap);
    return p;
}

/* A message encoded by wc_encode_oneway, sent on ``fd``; 0 once sent. */
int wc_send_on(int fd, const uint8_t *payload, size_t n) { return send_message(fd, payload, n); }

/* A request on the caller's own connection ``fd``, answered on it (nothing else may be read
 * from it meanwhile): 0 when an answer came, as wc_request. */
int wc_request_on(int fd, wc_reply *r, const char *fn, const char *fmt, ...) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < WC_MAX_FDS; i++) r->fds[i] = -1;
    size_t n = 0;
    uint64_t id = 0;
    va_list ap;
    va_start(ap, fmt);
    uint8_t *p = encode_on(&n, 'Q', &id, fn, fmt, ap);
    va_end(ap);
    int rc = p ? send_message(fd, p, n) : -1;
    free(p);
    wc_pending got;
    memset(&got, 0, sizeof got);
    return rc == 0 && read_answer(fd, id, &got) == 0 ? reply_from(r, &got) : -1;
}

void wc_report_misuse(const char *what) {
    size_t n = strlen(what);
    WCHAR *w = malloc((n + 1) * 2);
    if (!w) return;
    for (size_t i = 0; i <= n; i++) w[i] = (WCHAR)(unsigned char)what[i];
    wc_oneway("AllocatorMisuse", "s", w);
    free(w);
}

/* ---- callbacks ----------------------------------------------------------------------------- */

HRESULT wc_register_notification(uint64_t hid, HCS_NOTIFICATION_CALLBACK cb, void *ctx, uint64_t reg_id) {
    pthread_mutex_lock(&G.lock);
    wc_reg *r = reg_get(hid);
    if (!r) {
        pthread_mutex_unlock(&G.lock);
        return E_OUTOFMEMORY;
    }
    r->ncb = cb;
    r->ctx = ctx;
    r->reg_id = reg_id;
    ensure_event_thread_locked();
    flush_pending_locked(r);
    pthread_mutex_unlock(&G.lock);
    return S_OK;
}

void wc_unregister_notification(uint64_t reg_id) {
    pthread_mutex_lock(&G.lock);
    for (int b = 0; b < WC_BUCKETS; b++) {
        for (wc_reg *r = G.regs[b]; r; r = r->next) {
            if (r->reg_id == reg_id && reg_id) {
                r->ncb = NULL;
                r->reg_id = 0;
                /* HCS blocks until running callbacks of this registration have returned. */
                wait_not_dispatching(r->hid);
                pthread_mutex_unlock(&G.lock);
                return;
            }
        }
    }
    pthread_mutex_unlock(&G.lock);
}

HRESULT wc_set_event_callback(uint64_t hid, HCS_EVENT_CALLBACK cb, void *ctx) {
    pthread_mutex_lock(&G.lock);
    wc_reg *r = reg_get(hid);
    if (!r) {
        pthread_mutex_unlock(&G.lock);
        return E_OUTOFMEMORY;
    }
    if (r->ecb) {
        pthread_mutex_unlock(&G.lock);
        return HCS_E_CALLBACK_ALREADY_SET;
    }
    r->ecb = cb;
    r->ctx = ctx;
    ensure_event_thread_locked();
    flush_pending_locked(r);
    pthread_mutex_unlock(&G.lock);
    return S_OK;
}

HRESULT wc_register_hcn(HCN_NOTIFICATION_CALLBACK cb, void *ctx, uint64_t reg_id) {
    pthread_mutex_lock(&G.lock);
    wc_reg *r = reg_get(reg_id);
    if (!r) {
        pthread_mutex_unlock(&G.lock);
        return E_OUTOFMEMORY;
    }
    r->hcb = cb;
    r->ctx = ctx;
    ensure_event_thread_locked();
    flush_pending_locked(r);
    pthread_mutex_unlock(&G.lock);
    return S_OK;
}

void wc_forget_handle(uint64_t hid) {
    pthread_mutex_lock(&G.lock);
    wc_reg *r = reg_find(hid);
    if (r) {
        r->ncb = NULL;
        r->ecb = NULL;
        r->hcb = NULL;
        wait_not_dispatching(hid);
        reg_remove(hid);
    }
    pthread_mutex_unlock(&G.lock);
}

/* ---- gen3 operations ------------------------------------------------------------------------ */

HCS_OPERATION wc_op_create(const void *ctx, HCS_OPERATION_COMPLETION cb) {
    wc_op *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->ctx = (void *)ctx;
    o->cb = cb;
    o->type = -1;
    o->fds[0] = o->fds[1] = o->fds[2] = -1;
    pthread_mutex_lock(&G.lock);
    o->id = G.next_op++;
    o->next = G.ops[o->id % WC_BUCKETS];
    G.ops[o->id % WC_BUCKETS] = o;
    if (cb) ensure_event_thread_locked();
    pthread_mutex_unlock(&G.lock);
    wc_oneway("HcsCreateOperation", "u", (unsigned)o->id);
    return wc_op_value(o->id);
}

void wc_op_close(HCS_OPERATION op) {
    uint64_t id = wc_op_id(op);
    if (!id) return;
    pthread_mutex_lock(&G.lock);
    wc_op **pp = &G.ops[id % WC_BUCKETS];
    while (*pp && (*pp)->id != id) pp = &(*pp)->next;
    wc_op *o = *pp;
    if (o) {
        o->cb = NULL;
        wait_not_dispatching(id);
        /* the list may have changed while waiting */
        pp = &G.ops[id % WC_BUCKETS];
        while (*pp && *pp != o) pp = &(*pp)->next;
        if (*pp) *pp = o->next;
    }
    pthread_mutex_unlock(&G.lock);
    if (!o) return;
    for (int i = 0; i < 3; i++)
        if (o->fds[i] >= 0) close(o->fds[i]);
    free(o->result);
    free(o);
    wc_oneway("HcsCloseOperation", "u", (unsigned)id);
}

void *wc_op_get_context(HCS_OPERATION op) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    void *ctx = o ? o->ctx : NULL;
    pthread_mutex_unlock(&G.lock);
    return ctx;
}

HRESULT wc_op_set_context(HCS_OPERATION op, const void *ctx) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    if (o) o->ctx = (void *)ctx;
    pthread_mutex_unlock(&G.lock);
    return o ? S_OK : E_HANDLE;
}

HRESULT wc_op_set_callback(HCS_OPERATION op, const void *ctx, HCS_OPERATION_COMPLETION cb) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    if (o) {
        o->ctx = (void *)ctx;
        o->cb = cb;
        if (cb) ensure_event_thread_locked();
        if (cb && o->state == 2) {
            wc_event *e = make_event('c', o->id, 0, 0, NULL);
            if (e) evq_push_locked(e, 0);
        }
    }
    pthread_mutex_unlock(&G.lock);
    return o ? S_OK : E_HANDLE;
}

int wc_op_type(HCS_OPERATION op) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    int t = o ? o->type : -1;
    pthread_mutex_unlock(&G.lock);
    return t;
}

UINT64 wc_op_id_of(HCS_OPERATION op) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    UINT64 id = o ? o->id : (UINT64)-1;
    pthread_mutex_unlock(&G.lock);
    return id;
}

HCS_SYSTEM wc_op_system(HCS_OPERATION op) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    uint64_t h = o ? o->sys_hid : 0;
    pthread_mutex_unlock(&G.lock);
    return wc_handle_value(h);
}

HCS_PROCESS wc_op_process(HCS_OPERATION op) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    uint64_t h = o ? o->proc_hid : 0;
    pthread_mutex_unlock(&G.lock);
    return wc_handle_value(h);
}

HRESULT wc_op_begin(HCS_OPERATION op, int type) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    HRESULT hr = S_OK;
    if (!o)
        hr = E_HANDLE;
    else if (o->state == 1)
        hr = HCS_E_OPERATION_ALREADY_STARTED;
    else {
        o->state = 1;
        o->type = type;
        o->hr = S_OK;
        o->has_result = 0;
        o->has_pi = 0;
        for (int i = 0; i < 3; i++) {
            if (o->fds[i] >= 0) close(o->fds[i]);
            o->fds[i] = -1;
        }
    }
    pthread_mutex_unlock(&G.lock);
    return hr;
}

/* Completes an operation locally when the call never reached the daemon. */
void wc_op_fail(HCS_OPERATION op, HRESULT hr) {
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    if (o && o->state == 1) {
        o->state = 2;
        o->hr = hr;
        pthread_cond_broadcast(&G.cond);
        if (o->cb) {
            wc_event *e = make_event('c', o->id, 0, 0, NULL);
            if (e) evq_push_locked(e, 0);
        }
    }
    pthread_mutex_unlock(&G.lock);
}

HRESULT wc_op_result(HCS_OPERATION op, DWORD timeout_ms, int wait, HCS_PROCESS_INFORMATION *pi, PWSTR *doc) {
    if (doc) *doc = NULL;
    pthread_mutex_lock(&G.lock);
    wc_op *o = op_find(wc_op_id(op));
    if (!o) {
        pthread_mutex_unlock(&G.lock);
        return E_HANDLE;
    }
    if (o->state == 0) {
        pthread_mutex_unlock(&G.lock);
        return HCS_E_OPERATION_NOT_STARTED;
    }
    if (o->state == 1 && !wait) {
        pthread_mutex_unlock(&G.lock);
        return HCS_E_OPERATION_PENDING;
    }
    if (o->state == 1) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        if (timeout_ms != 0xFFFFFFFFu) {
            deadline.tv_sec += timeout_ms / 1000;
            deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
            }
        }
        while (o->state == 1) {
            if (timeout_ms == 0xFFFFFFFFu) {
                pthread_cond_wait(&G.cond, &G.lock);
            } else if (pthread_cond_timedwait(&G.cond, &G.lock, &deadline) == ETIMEDOUT) {
                break;
            }
            o = op_find(wc_op_id(op));
            if (!o) {
                pthread_mutex_unlock(&G.lock);
                return E_HANDLE;
            }
        }
        if (o->state == 1) {
            pthread_mutex_unlock(&G.lock);
            return HCS_E_OPERATION_TIMEOUT;
        }
    }
    HRESULT hr = o->hr;
    if (doc && o->has_result) *doc = wc_alloc_wstr(o->result ? o->result : (const uint8_t *)"", o->result_len);
    if (pi) {
        memset(pi, 0, sizeof *pi);
        if (o->has_pi) {
            pi->ProcessId = o->pid;
            HANDLE *slots[3] = {&pi->StdInput, &pi->StdOutput, &pi->StdError};
            for (int i = 0; i < 3; i++) {
                /* Each retrieval hands out handles the caller owns (as HcsGetProcessInfo does). */
                if (o->fds[i] >= 0) {
                    int d = fcntl(o->fds[i], F_DUPFD_CLOEXEC, 3);
                    *slots[i] = d >= 0 ? (HANDLE)(intptr_t)d : NULL;
                }
            }
        }
    }
    pthread_mutex_unlock(&G.lock);
    return hr;
}
