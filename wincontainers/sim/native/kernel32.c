/* Simulated kernel32.dll: the Win32 file, handle and process calls wincontainers makes.
 *
 * What needs the host's state goes to the daemon (wincontainers/sim/k32_handlers.py): opening
 * and creating files (the daemon checks the path, dispositions, share modes, read-only files,
 * privileges and the file's DACL, and hands back a descriptor of the backing file), folders,
 * deletion, links, renames, attributes, listings, processes. What does not stays here: ReadFile,
 * WriteFile and the data of BackupRead/BackupWrite go straight to the descriptor, so a file's
 * bytes never cross the daemon's socket. Metadata a handle changes (basic information, security
 * descriptor, EAs, reparse data, alternate streams) is kept with the handle and sent with its
 * CloseHandle, one-way; the daemon makes later calls from other processes wait for it.
 *
 * The last error is per thread, as in the TEB; advapi32.dll sets it through SetLastError.
 * Handles are small ids ((id << 4) | 8 for the daemon's objects, | 4 for searches), so a stale
 * or foreign handle is detected, never followed.
 */
#define _GNU_SOURCE
#include "wcsim.h"

#include <dirent.h>
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
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

typedef uint8_t BOOLEAN;
typedef uint32_t UINT;

typedef struct _FILETIME {
    DWORD dwLowDateTime;
    DWORD dwHighDateTime;
} FILETIME;

typedef struct _SECURITY_ATTRIBUTES {
    DWORD nLength;
    void *lpSecurityDescriptor;
    BOOL bInheritHandle;
} SECURITY_ATTRIBUTES;

typedef struct _OVERLAPPED {
    uint64_t Internal;
    uint64_t InternalHigh;
    DWORD Offset;
    DWORD OffsetHigh;
    HANDLE hEvent;
} OVERLAPPED;

typedef struct _BY_HANDLE_FILE_INFORMATION {
    DWORD dwFileAttributes;
    FILETIME ftCreationTime, ftLastAccessTime, ftLastWriteTime;
    DWORD dwVolumeSerialNumber, nFileSizeHigh, nFileSizeLow, nNumberOfLinks, nFileIndexHigh, nFileIndexLow;
} BY_HANDLE_FILE_INFORMATION;

typedef struct _WIN32_FILE_ATTRIBUTE_DATA {
    DWORD dwFileAttributes;
    FILETIME ftCreationTime, ftLastAccessTime, ftLastWriteTime;
    DWORD nFileSizeHigh, nFileSizeLow;
} WIN32_FILE_ATTRIBUTE_DATA;

typedef struct _WIN32_FIND_DATAW {
    DWORD dwFileAttributes;
    FILETIME ftCreationTime, ftLastAccessTime, ftLastWriteTime;
    DWORD nFileSizeHigh, nFileSizeLow, dwReserved0, dwReserved1;
    WCHAR cFileName[260];
    WCHAR cAlternateFileName[14];
} WIN32_FIND_DATAW;

typedef struct _FILE_BASIC_INFO {
    int64_t CreationTime, LastAccessTime, LastWriteTime, ChangeTime;
    DWORD FileAttributes;
} FILE_BASIC_INFO;

typedef struct _FILE_STANDARD_INFO {
    int64_t AllocationSize, EndOfFile;
    DWORD NumberOfLinks;
    BOOLEAN DeletePending, Directory;
} FILE_STANDARD_INFO;

typedef struct _FILE_ID_INFO {
    uint64_t VolumeSerialNumber;
    uint8_t FileId[16];
} FILE_ID_INFO;

typedef struct _FILE_ATTRIBUTE_TAG_INFO {
    DWORD FileAttributes, ReparseTag;
} FILE_ATTRIBUTE_TAG_INFO;

#define TRUE_ 1
#define FALSE_ 0
#define INVALID_HANDLE ((HANDLE)(intptr_t)-1)
#define INVALID_FILE_ATTRIBUTES 0xFFFFFFFFu

#define ERROR_INVALID_FUNCTION 1
#define ERROR_ACCESS_DENIED 5
#define ERROR_INVALID_HANDLE 6
#define ERROR_NOT_ENOUGH_MEMORY 8
#define ERROR_NO_MORE_FILES 18
#define ERROR_NOT_READY 21
#define ERROR_BAD_LENGTH 24
#define ERROR_GEN_FAILURE 31
#define ERROR_HANDLE_EOF 38
#define ERROR_NOT_SUPPORTED 50
#define ERROR_INVALID_PARAMETER 87
#define ERROR_DISK_FULL 112
#define ERROR_INSUFFICIENT_BUFFER 122
#define ERROR_NEGATIVE_SEEK 131
#define ERROR_DIR_NOT_EMPTY 145
#define ERROR_ALREADY_EXISTS 183
#define ERROR_INVALID_OWNER 1307
#define ERROR_INVALID_DATA 13

#define FILE_READ_DATA 0x1
#define FILE_WRITE_DATA 0x2
#define FILE_APPEND_DATA 0x4
#define FILE_WRITE_EA 0x10
#define FILE_READ_ATTRIBUTES 0x80
#define FILE_WRITE_ATTRIBUTES 0x100
#define DELETE_ACCESS 0x10000
#define WRITE_DAC 0x40000
#define WRITE_OWNER 0x80000
#define ACCESS_SYSTEM_SECURITY 0x1000000

#define CREATE_ALWAYS 2
#define OPEN_ALWAYS 4

#define FILE_ATTRIBUTE_DIRECTORY 0x10
#define FILE_ATTRIBUTE_REPARSE_POINT 0x400

#define PRIV_BACKUP 1
#define PRIV_RESTORE 2
#define PRIV_SECURITY 4
#define PRIV_ELEVATED 8

#define BACKUP_DATA 1
#define BACKUP_EA_DATA 2
#define BACKUP_SECURITY_DATA 3
#define BACKUP_ALTERNATE_DATA 4
#define BACKUP_REPARSE_DATA 8
#define BACKUP_SPARSE_BLOCK 9

#define MAX_METADATA_STREAM (64u << 20)

/* ---- the last error -------------------------------------------------------------------------- */

static __thread DWORD t_last_error;

WC_API DWORD GetLastError(void) { return t_last_error; }
WC_API void SetLastError(DWORD code) { t_last_error = code; }

static BOOL fail(DWORD code) {
    t_last_error = code;
    return FALSE_;
}

static DWORD errno_code(int e) {
    switch (e) {
    case EBADF:
    case EACCES:
    case EPERM:
        return ERROR_ACCESS_DENIED;
    case ENOSPC:
        return ERROR_DISK_FULL;
    case EINVAL:
        return ERROR_INVALID_PARAMETER;
    case ENOMEM:
        return ERROR_NOT_ENOUGH_MEMORY;
    default:
        return ERROR_GEN_FAILURE;
    }
}

/* ---- handles ---------------------------------------------------------------------------------- */

enum { OBJ_FILE = 1, OBJ_FIND = 2 };

typedef struct k32_obj {
    struct k32_obj *next;
    uint64_t id;
    int kind;
    int fd;
    DWORD access;
    int directory;
    /* what the daemon told at open time, kept current by this handle's own changes */
    DWORD attributes;
    int64_t times[4];
    DWORD serial;
    uint64_t index;
    DWORD links;
    DWORD reparse_tag;
    DWORD privileges;
    int delete_pending;
    /* changes sent with CloseHandle */
    int basic_set;
    int64_t set_times[4];
    DWORD set_attributes;
    int wrote;
    uint8_t *security, *eas, *reparse, *streams;
    uint32_t security_len, eas_len, reparse_len, streams_len, streams_cap;
    /* opened here in a leased folder (see "folder leases") */
    struct lease *lease;
    int slot, created, delete_on_close;
    int deferred; /* nothing opened yet, a handle only to delete its file (lease_create): 1, or 2
                   * when its times are the lease's (kept when it is opened) */
    char *rel;
    /* a search */
    uint8_t *entries;
    uint32_t entries_len, count, next_entry;
    const uint8_t *cursor;
} k32_obj;

static pthread_mutex_t objs_lock = PTHREAD_MUTEX_INITIALIZER;
static k32_obj *objs[256];
static uint64_t next_find_id = 1;

static HANDLE handle_of(const k32_obj *o) {
    return (HANDLE)(uintptr_t)((o->id << 4) | (o->kind == OBJ_FIND ? 0x4 : 0x8));
}

static k32_obj *find_obj(HANDLE h, int kind, int take) {
    uintptr_t v = (uintptr_t)h;
    if ((v & 0xF) != (kind == OBJ_FIND ? 0x4u : 0x8u)) return NULL;
    uint64_t id = v >> 4;
    pthread_mutex_lock(&objs_lock);
    k32_obj **pp = &objs[id % 256];
    while (*pp && !((*pp)->id == id && (*pp)->kind == kind)) pp = &(*pp)->next;
    k32_obj *o = *pp;
    if (o && take) *pp = o->next;
    pthread_mutex_unlock(&objs_lock);
    return o;
}

static void add_obj(k32_obj *o) {
    pthread_mutex_lock(&objs_lock);
    o->next = objs[o->id % 256];
    objs[o->id % 256] = o;
    pthread_mutex_unlock(&objs_lock);
}

static void lease_release(struct lease *l);

static void free_obj(k32_obj *o) {
    if (o->fd >= 0) close(o->fd);
    if (o->lease) lease_release(o->lease);
    free(o->rel);
    free(o->security);
    free(o->eas);
    free(o->reparse);
    free(o->streams);
    free(o->entries);
    free(o);
}

static void open_deferred(k32_obj *o);

/* A file handle for any use but closing it: a deferred one is opened first. */
static k32_obj *file_of(HANDLE h) {
    k32_obj *o = find_obj(h, OBJ_FILE, 0);
    if (o && o->deferred) open_deferred(o);
    return o;
}

static int64_t rd_int(wc_reply *r) {
    int64_t v = 0;
    wc_reply_int(r, &v);
    return v;
}

/* An answered request: its status becomes the last error; nonzero is a failure. */
static int answered(wc_reply *r, int ok) {
    if (!ok) {
        t_last_error = ERROR_NOT_READY; /* the simulated host's service is not running */
        return 0;
    }
    t_last_error = (DWORD)r->status;
    if (r->status != 0) {
        wc_reply_free(r);
        return 0;
    }
    return 1;
}

static BOOL simple(const char *fn, const char *fmt, ...);

/* ---- folder leases ------------------------------------------------------------------------------
 *
 * A folder this process made with CreateDirectoryW is leased to it (wincontainers/sim/leases.py
 * says why, and how a lease ends). Inside it this file creates folders and files, opens what it
 * made there, and deletes it, by itself; what it did goes to the daemon one-way and in order, on
 * a connection of its own (the journal). Only plain cases are done here: ASCII names with nothing
 * Windows treats specially, no other handle open on the name, metadata this file knows (it sent
 * it), and access that needs no reading of a DACL (none stored, or backup semantics with the
 * privileges that pass it). Everything else goes to the daemon, which ends the lease first.
 * Around each local call the shared page's busy count is raised, and nothing is done unless the
 * page says ACTIVE: the daemon settles a lease by saying SETTLING and waiting for busy to be zero.
 */

#define LEASE_PAGE 8192
#define LEASE_SLOTS 15
#define LEASE_REL_MAX 484
#define LEASE_MAX 16
#define LEASE_ACTIVE 0u
#define LEASE_SETTLING 1u
#define LEASE_REVOKED 2u
#define LOCAL_ID_BIT (1ull << 46)
#define LEASE_PATH_MAX 4096

#define GENERIC_READ 0x80000000u
#define GENERIC_WRITE 0x40000000u
#define GENERIC_EXECUTE 0x20000000u
#define GENERIC_ALL 0x10000000u
#define MAXIMUM_ALLOWED 0x02000000u
#define SYNCHRONIZE 0x00100000u
#define FILE_EXECUTE 0x20
#define FILE_ALL_ACCESS 0x001F01FFu
#define FILE_GENERIC_READ 0x00120089u
#define FILE_GENERIC_WRITE 0x00120116u
#define FILE_GENERIC_EXECUTE 0x001200A0u
#define READ_RIGHTS (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE | ACCESS_SYSTEM_SECURITY)
#define WRITE_RIGHTS (FILE_GENERIC_WRITE | WRITE_DAC | WRITE_OWNER | DELETE_ACCESS | ACCESS_SYSTEM_SECURITY)
#define FILE_FLAG_BACKUP_SEMANTICS 0x02000000u
#define FILE_FLAG_DELETE_ON_CLOSE 0x04000000u
#define SETTABLE_ATTRIBUTES 0x2B127u
#define FILE_ATTRIBUTE_READONLY 0x1
#define FILE_ATTRIBUTE_ARCHIVE 0x20
#define CREATE_NEW 1
#define OPEN_EXISTING 3
#define EPOCH_AS_FILETIME 116444736000000000ll

typedef struct {
    uint32_t state, busy, privileges, generation; /* generation: of what the folder holds */
} lease_head;

typedef struct {
    uint64_t id;
    uint32_t access, share, flags, directory, rel_len;
    char rel[LEASE_REL_MAX];
} lease_slot;

_Static_assert(sizeof(lease_head) == 16, "the page's head is 16 bytes (leases.py)");
_Static_assert(sizeof(lease_slot) == 512, "a slot is 512 bytes (leases.py)");

enum { TIMES_FROM_DISK = 0, TIMES_KNOWN = 1, TIMES_UNKNOWN = 2 };

typedef struct {
    char *key; /* lower case, backslashes, "" for the folder itself; NULL free, TOMB deleted */
    uint8_t dir, has_attributes, times, has_sd, reparse;
    uint32_t opens;
    DWORD attributes;
    int64_t time[4];
} lease_name;

static char TOMB[1];

/* Names made in a lease: open addressing on the lower-case key. */
typedef struct {
    lease_name *cells;
    size_t cap, used; /* used: cells with a key or a tombstone */
} name_table;

typedef struct lease {
    uint64_t id;
    pid_t pid;
    char *prefix; /* the folder as CreateDirectoryW was given it, in lower case */
    size_t prefix_len;
    char *host;
    uint8_t *page;
    pthread_mutex_t lock; /* names, slots, refs */
    name_table names;
    uint32_t next_handle;
    uint32_t generation; /* of the names: the page's moves on when an HCS call filled the folder */
    int refs;            /* the table's and each open local handle's */
} lease;

static pthread_mutex_t leases_lock = PTHREAD_MUTEX_INITIALIZER;
static lease *leases[LEASE_MAX];
static int journal_fd = -1;
static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;

/* The journal's ring: memory the daemon shares with this process (JournalRing), so an entry
 * costs no system call. Entries are whole one-way messages, each after its length, wrapping
 * around the data. The daemon takes them at every barrier (before any call that sees files
 * runs, and before a lease is settled), when rung (once per RING_BELL bytes written, so it
 * keeps up), and when the connection ends, the process killed included: what a call put in
 * the ring before it returned is never lost. Without a ring, entries go on the socket. */
#define RING_HEAD 64
#define RING_DATA (1u << 20)
#define RING_BELL (64u << 10)
#define RING_PATIENCE_MS 60000

typedef struct {
    uint64_t written, taken; /* bytes put in by this process; bytes the daemon has applied */
} ring_head;

_Static_assert(sizeof(ring_head) <= RING_HEAD, "the ring's head (daemon.py: JournalRing)");

static uint8_t *journal_ring;
static pid_t lease_pid; /* this process (kept: getpid is a system call, asked on every local call) */

static int dir_has_children(int fd);

static lease_head *head_of(lease *l) { return (lease_head *)l->page; }
static lease_slot *slot_of(lease *l, int i) { return (lease_slot *)(l->page + sizeof(lease_head)) + i; }

static int table_init(name_table *t, size_t cap) {
    t->cells = calloc(cap, sizeof *t->cells);
    t->cap = t->cells ? cap : 0;
    t->used = 0;
    return t->cells != NULL;
}

static void table_free(name_table *t) {
    for (size_t i = 0; i < t->cap; i++)
        if (t->cells[i].key != TOMB) free(t->cells[i].key);
    free(t->cells);
    t->cells = NULL;
    t->cap = t->used = 0;
}

static void lease_free(lease *l) {
    table_free(&l->names);
    free(l->prefix);
    free(l->host);
    if (l->page) munmap(l->page, LEASE_PAGE);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void lease_release(lease *l) {
    pthread_mutex_lock(&l->lock);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->lock);
    if (last) lease_free(l);
}

/* A lease that ended leaves the table (its open handles keep it until they close). */
static void lease_drop_locked(int i) {
    lease *l = leases[i];
    leases[i] = NULL;
    if (l) lease_release(l);
}

/* ASCII lower case: the case Windows ignores in the names kept here (only ASCII ones are). */
static char fold(unsigned c) { return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c); }

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* The cell holding ``key``, or NULL (the lease's lock held for its table). */
static lease_name *name_find(const name_table *t, const char *key) {
    size_t mask = t->cap - 1, i = (size_t)fnv(key) & mask;
    for (; t->cells[i].key; i = (i + 1) & mask)
        if (t->cells[i].key != TOMB && !strcmp(t->cells[i].key, key)) return &t->cells[i];
    return NULL;
}

/* A new entry ``key`` (absent), growing the table at half full. */
static lease_name *name_add(name_table *t, const char *key, int dir) {
    if ((t->used + 1) * 2 > t->cap) {
        name_table grown;
        if (!table_init(&grown, t->cap * 2)) return NULL;
        size_t mask = grown.cap - 1;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->cells[i].key || t->cells[i].key == TOMB) continue;
            size_t j = (size_t)fnv(t->cells[i].key) & mask;
            while (grown.cells[j].key) j = (j + 1) & mask;
            grown.cells[j] = t->cells[i];
            grown.used++;
        }
        free(t->cells);
        *t = grown;
    }
    lease_name n;
    memset(&n, 0, sizeof n);
    n.key = strdup(key);
    if (!n.key) return NULL;
    n.dir = (uint8_t)dir;
    size_t mask = t->cap - 1, i = (size_t)fnv(key) & mask;
    while (t->cells[i].key && t->cells[i].key != TOMB) i = (i + 1) & mask;
    if (!t->cells[i].key) t->used++;
    t->cells[i] = n;
    return &t->cells[i];
}

static void name_remove(lease_name *n) {
    free(n->key);
    n->key = TOMB;
}

static int lease_refresh(lease *l);

/* Enter a local call: 1 when the lease may be used (leave with lease_leave), 0 when it is over. */
static int lease_enter(lease *l) {
    lease_head *h = head_of(l);
    if (l->pid != lease_pid) return 0; /* a forked child's copy: the parent's lease */
    for (long waited = 0;; waited++) {
        __atomic_add_fetch(&h->busy, 1, __ATOMIC_SEQ_CST);
        uint32_t state = __atomic_load_n(&h->state, __ATOMIC_SEQ_CST);
        if (state == LEASE_ACTIVE) {
            if (__atomic_load_n(&h->generation, __ATOMIC_SEQ_CST) == __atomic_load_n(&l->generation, __ATOMIC_SEQ_CST))
                return 1;
            /* an HCS call filled the folder: learn what it holds, then go on */
            __atomic_sub_fetch(&h->busy, 1, __ATOMIC_SEQ_CST);
            if (lease_refresh(l)) return 0;
            continue;
        }
        __atomic_sub_fetch(&h->busy, 1, __ATOMIC_SEQ_CST);
        if (state != LEASE_SETTLING || waited > 200000) return 0;
        /* the daemon is catching up with this lease: its verdict comes within moments */
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

static void lease_leave(lease *l) { __atomic_sub_fetch(&head_of(l)->busy, 1, __ATOMIC_SEQ_CST); }

static int lease_over(lease *l) { return __atomic_load_n(&head_of(l)->state, __ATOMIC_SEQ_CST) == LEASE_REVOKED; }

static int journal(const char *fn, uint64_t lease_id, const char *rel, int kind, const k32_obj *o,
                   const FILE_BASIC_INFO *b);
static void journal_flush(void);

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == ' ' || c == '+' || c == '~' || c == '$' || c == '#' || c == '@' || c == '(' || c == ')' ||
           c == '!' || c == ',' || c == '=' || c == '{' || c == '}' || c == '[' || c == ']' || c == '\'';
}

static int reserved_name(const char *s, size_t n) {
    size_t stem = 0;
    while (stem < n && s[stem] != '.') stem++;
    static const char *const devices[] = {"con", "prn", "aux", "nul", "conin$", "conout$"};
    for (size_t i = 0; i < sizeof devices / sizeof *devices; i++)
        if (strlen(devices[i]) == stem && !strncmp(s, devices[i], stem)) return 1;
    return stem == 4 && (!strncmp(s, "com", 3) || !strncmp(s, "lpt", 3)) && s[3] >= '0' && s[3] <= '9';
}

/* Whether ``rel`` (lower case; "" is the folder itself) is a path this file may handle: plain
 * names only, none of the simulator's own files. */
static int plain_rel(const char *rel) {
    const char *c = rel;
    while (*c) {
        const char *start = c;
        while (*c && *c != '\\') {
            if (!name_char(*c)) return 0;
            c++;
        }
        size_t n = (size_t)(c - start);
        if (!n || n > 255 || start[n - 1] == '.' || start[n - 1] == ' ') return 0;
        if (reserved_name(start, n) || (n >= 7 && !strncmp(start, ".wcsim-", 7))) return 0;
        if (*c == '\\' && !*++c) return 0;
    }
    return (size_t)(c - rel) < LEASE_REL_MAX;
}

/* The lease ``path`` lies in (a reference taken), with the path below it in ``rel`` (as given)
 * and ``key`` (lower case); NULL when none does or the path is not plain. */
static lease *lease_for(PCWSTR path, char *rel, char *key) {
    char text[LEASE_PATH_MAX], lower[LEASE_PATH_MAX];
    size_t n = 0;
    for (; path[n]; n++) {
        if (n + 1 >= LEASE_PATH_MAX || path[n] >= 0x7F || path[n] < 0x20) return NULL;
        text[n] = (char)path[n];
        lower[n] = fold(path[n]);
    }
    text[n] = lower[n] = 0;
    pid_t me = lease_pid;
    pthread_mutex_lock(&leases_lock);
    for (int i = 0; i < LEASE_MAX; i++) {
        lease *l = leases[i];
        if (!l || l->pid != me) continue;
        if (lease_over(l)) {
            lease_drop_locked(i);
            continue;
        }
        size_t p = l->prefix_len;
        if (n < p || memcmp(lower, l->prefix, p)) continue;
        size_t at = p;
        if (lower[at] == '\\' || lower[at] == '/') at++; /* the separator after the folder */
        else if (lower[at]) continue;                     /* a longer name that begins alike */
        for (size_t i = at; i < n; i++) /* the simulated host takes either separator */
            if (text[i] == '/') text[i] = lower[i] = '\\';
        if (!plain_rel(lower + at)) continue;
        strcpy(rel, text + at);
        strcpy(key, lower + at);
        pthread_mutex_lock(&l->lock);
        l->refs++;
        pthread_mutex_unlock(&l->lock);
        pthread_mutex_unlock(&leases_lock);
        return l;
    }
    pthread_mutex_unlock(&leases_lock);
    return NULL;
}

/* The folder ``key`` would be in is the lease's folder or a folder made in it; l->lock held. */
static int parent_known(lease *l, const char *key) {
    const char *cut = strrchr(key, '\\');
    char parent[LEASE_REL_MAX];
    size_t n = cut ? (size_t)(cut - key) : 0;
    memcpy(parent, key, n);
    parent[n] = 0;
    lease_name *p = name_find(&l->names, parent);
    return p && p->dir;
}

static void host_path(lease *l, const char *rel, char *out, size_t cap) {
    snprintf(out, cap, *rel ? "%s/%s" : "%s", l->host, rel);
    for (char *c = out + strlen(l->host); *c; c++)
        if (*c == '\\') *c = '/';
}

/* CreateDirectoryW in a lease: 1 done (the result in *ok), 0 for the daemon to do. */
static int lease_mkdir(PCWSTR path, BOOL *ok) {
    char rel[LEASE_PATH_MAX], key[LEASE_PATH_MAX], host[LEASE_PATH_MAX + 512];
    lease *l = lease_for(path, rel, key);
    if (!l) return 0;
    int done = 0;
    if (*key && lease_enter(l)) {
        pthread_mutex_lock(&l->lock);
        if (!name_find(&l->names, key) && parent_known(l, key)) {
            host_path(l, rel, host, sizeof host);
            if (mkdir(host, 0755) == 0) {
                if (name_add(&l->names, key, 1) && journal("LeaseMkdir", l->id, rel, 1, NULL, NULL) == 0)
                    done = 1;
                else
                    rmdir(host);
            }
        }
        pthread_mutex_unlock(&l->lock);
        lease_leave(l);
    }
    lease_release(l);
    if (done) {
        t_last_error = 0;
        *ok = TRUE_;
    }
    return done;
}

static DWORD map_generic(DWORD access) {
    if (access & GENERIC_READ) access = (access & ~GENERIC_READ) | FILE_GENERIC_READ;
    if (access & GENERIC_WRITE) access = (access & ~GENERIC_WRITE) | FILE_GENERIC_WRITE;
    if (access & GENERIC_EXECUTE) access = (access & ~GENERIC_EXECUTE) | FILE_GENERIC_EXECUTE;
    if (access & GENERIC_ALL) access = (access & ~GENERIC_ALL) | FILE_ALL_ACCESS;
    return access;
}

/* Whether the daemon would grant ``granted`` on ``n`` without anything this file cannot know. */
static int access_known(const lease_name *n, DWORD granted, DWORD flags, uint32_t privileges) {
    if (granted & ~(FILE_ALL_ACCESS | ACCESS_SYSTEM_SECURITY)) return 0;
    if (granted & ACCESS_SYSTEM_SECURITY && !(privileges & PRIV_SECURITY)) return 0;
    if (!n || !n->has_sd) return 1; /* no DACL: all access */
    DWORD free_ = SYNCHRONIZE | FILE_READ_ATTRIBUTES | ACCESS_SYSTEM_SECURITY;
    if (flags & FILE_FLAG_BACKUP_SEMANTICS && privileges & PRIV_BACKUP) free_ |= READ_RIGHTS;
    if (flags & FILE_FLAG_BACKUP_SEMANTICS && privileges & PRIV_RESTORE) free_ |= WRITE_RIGHTS;
    return !(granted & ~free_);
}

static int64_t filetime_of(const struct timespec *t) {
    return (int64_t)t->tv_sec * 10000000ll + t->tv_nsec / 100 + EPOCH_AS_FILETIME;
}

/* What a handle opened here learns of its backing file: kind, id, links and, unless the handle
 * has them from the lease already (``times_known``), the times the daemon would show. */
static void take_stat(k32_obj *o, const struct stat *st, int times_known) {
    o->directory = S_ISDIR(st->st_mode);
    if (!times_known) { /* what the daemon shows of a file with no times stored: the disk's */
        o->times[2] = filetime_of(&st->st_mtim);
        o->times[0] = o->times[1] = o->times[2];
        o->times[3] = filetime_of(&st->st_ctim);
    }
    o->serial = (DWORD)(((uint64_t)st->st_dev * 2654435761ull + 0x5EED) & 0xFFFFFFFFu);
    o->index = (uint64_t)st->st_ino;
    o->links = (DWORD)st->st_nlink;
}

static pthread_mutex_t deferred_lock = PTHREAD_MUTEX_INITIALIZER;

/* Open, on first use other than closing it, a handle made only to delete its file. Its file is
 * the lease's and nothing else has it open, so it is where lease_create found it. Should it be
 * gone, the handle keeps no descriptor and its calls fail as on a file that went away. */
static void open_deferred(k32_obj *o) {
    pthread_mutex_lock(&deferred_lock);
    if (o->deferred) {
        char host[LEASE_PATH_MAX + 512];
        host_path(o->lease, o->rel, host, sizeof host);
        int fd = open(host, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0) {
            take_stat(o, &st, o->deferred == 2);
            o->fd = fd;
        } else if (fd >= 0) {
            close(fd);
        }
        o->deferred = 0;
    }
    pthread_mutex_unlock(&deferred_lock);
}

/* CreateFileW in a lease: the handle, or NULL for the daemon to do it. */
static HANDLE lease_create(PCWSTR path, DWORD access, DWORD share, DWORD disposition, DWORD flags) {
    if (flags & SETTABLE_ATTRIBUTES & ~FILE_ATTRIBUTE_ARCHIVE || access & MAXIMUM_ALLOWED) return NULL;
    char rel[LEASE_PATH_MAX], key[LEASE_PATH_MAX], host[LEASE_PATH_MAX + 512];
    lease *l = lease_for(path, rel, key);
    if (!l) return NULL;
    DWORD granted = map_generic(access);
    uint32_t privileges = __atomic_load_n(&head_of(l)->privileges, __ATOMIC_SEQ_CST);
    int existed = 0;
    k32_obj *o = calloc(1, sizeof *o);
    if (o && lease_enter(l)) {
        pthread_mutex_lock(&l->lock);
        lease_name *n = name_find(&l->names, key);
        int slot = -1;
        for (int i = 0; i < LEASE_SLOTS && slot < 0; i++)
            if (!slot_of(l, i)->id) slot = i;
        int fd = -1, created = 0, deferred = 0;
        int reading = (granted & (FILE_READ_DATA | FILE_EXECUTE)) != 0;
        int writing = (granted & (FILE_WRITE_DATA | FILE_APPEND_DATA)) != 0;
        int delete_on_close = (flags & FILE_FLAG_DELETE_ON_CLOSE) != 0;
        host_path(l, rel, host, sizeof host);
        if (slot < 0 || l->next_handle >= 0xFFFFFF || !access_known(n, granted, flags, privileges) ||
            (delete_on_close && !(granted & DELETE_ACCESS))) {
            /* the daemon decides */
        } else if (!n && *key && parent_known(l, key) && !delete_on_close &&
                   (disposition == CREATE_NEW || disposition == CREATE_ALWAYS || disposition == OPEN_ALWAYS)) {
            int mode = reading && writing ? O_RDWR : writing ? O_WRONLY : O_RDONLY;
            fd = open(host, mode | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd >= 0 && !reading && !writing) {
                int p = open(host, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                close(fd);
                fd = p;
            }
            if (fd >= 0 && !(n = name_add(&l->names, key, 0))) {
                close(fd);
                unlink(host);
                fd = -1;
            }
            created = fd >= 0;
        } else if (n && !n->opens && !n->reparse &&
                   /* times only the daemon knows matter to a handle that may read them */
                   (n->times != TIMES_UNKNOWN || !(granted & FILE_READ_ATTRIBUTES)) &&
                   (disposition == OPEN_EXISTING || disposition == OPEN_ALWAYS) &&
                   (n->dir ? flags & FILE_FLAG_BACKUP_SEMANTICS && !delete_on_close
                           : !(n->has_attributes && n->attributes & FILE_ATTRIBUTE_READONLY &&
                               (writing || delete_on_close)))) {
            if (n->dir)
                fd = open(host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            else if (delete_on_close && !(granted & ~(DELETE_ACCESS | SYNCHRONIZE)))
                deferred = 1; /* only to delete it when closed: nothing to open (file_of opens it if asked) */
            else if (reading || writing)
                fd = open(host, (reading && writing ? O_RDWR : writing ? O_WRONLY : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
            else
                fd = open(host, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            existed = fd >= 0 || deferred;
        }
        struct stat st;
        if (fd >= 0 && fstat(fd, &st)) {
            close(fd);
            fd = -1;
        }
        if (fd >= 0 || deferred) {
            n->opens++;
            o->kind = OBJ_FILE;
            o->id = LOCAL_ID_BIT | (l->id << 24) | ++l->next_handle;
            o->fd = fd;
            o->access = granted;
            int times_known = n->times == TIMES_KNOWN;
            if (times_known) memcpy(o->times, n->time, sizeof o->times);
            if (deferred) { /* a file, as the lease knows it; the rest when it is opened */
                o->directory = 0;
                o->deferred = times_known ? 2 : 1;
            } else {
                take_stat(o, &st, times_known);
            }
            o->attributes = n->has_attributes ? n->attributes
                                              : o->directory ? FILE_ATTRIBUTE_DIRECTORY : FILE_ATTRIBUTE_ARCHIVE;
            o->privileges = privileges;
            o->delete_on_close = delete_on_close;
            o->lease = l;
            o->slot = slot;
            o->created = created;
            o->rel = strdup(rel);
            l->refs++; /* the handle's */
            lease_slot *s = slot_of(l, slot);
            s->access = granted;
            s->share = share;
            s->flags = flags;
            s->directory = (uint32_t)o->directory;
            s->rel_len = (uint32_t)strlen(rel);
            memcpy(s->rel, rel, s->rel_len);
            __atomic_store_n(&s->id, o->id, __ATOMIC_SEQ_CST);
        }
        pthread_mutex_unlock(&l->lock);
        lease_leave(l);
    }
    lease_release(l);
    if (!o || !o->lease || !o->rel) {
        if (o && o->lease) { /* out of memory after the open: the daemon is asked instead */
            __atomic_store_n(&slot_of(o->lease, o->slot)->id, 0, __ATOMIC_SEQ_CST);
            free_obj(o);
        } else {
            free(o);
        }
        return NULL;
    }
    add_obj(o);
    t_last_error = existed && disposition == OPEN_ALWAYS ? ERROR_ALREADY_EXISTS : 0;
    return handle_of(o);
}

/* SetFileInformationByHandle(FileDispositionInfo) on a handle opened here: 1 done (the result in
 * *ok), 0 when the lease is over (the daemon adopted the handle). */
static int lease_disposition(k32_obj *o, int del, BOOL *ok) {
    lease *l = o->lease;
    if (!lease_enter(l)) return 0;
    DWORD code = 0;
    if (del && !o->directory && o->attributes & FILE_ATTRIBUTE_READONLY) code = ERROR_ACCESS_DENIED;
    else if (del && o->directory && dir_has_children(o->fd)) code = ERROR_DIR_NOT_EMPTY;
    if (!code) {
        o->delete_pending = del;
        lease_slot *s = slot_of(l, o->slot);
        s->flags = del ? s->flags | FILE_FLAG_DELETE_ON_CLOSE : s->flags & ~FILE_FLAG_DELETE_ON_CLOSE;
    }
    lease_leave(l);
    *ok = code ? fail(code) : TRUE_;
    if (!code) t_last_error = 0;
    return 1;
}

/* One packed listing entry (the daemon's layout, read by next_entry). */
typedef struct {
    const char *name;
    DWORD attributes;
    int64_t times[3], size;
} found_entry;

static int by_name(const void *a, const void *b) {
    return strcmp(((const found_entry *)a)->name, ((const found_entry *)b)->name);
}

/* What a listing shows of ``n`` (on disk as ``st``): the daemon's describe(). */
static int found_of(const lease_name *n, const struct stat *st, const char *name, found_entry *e) {
    if (!n || n->reparse || n->times == TIMES_UNKNOWN) return 0;
    int dir = S_ISDIR(st->st_mode);
    DWORD a = n->has_attributes ? n->attributes : dir ? FILE_ATTRIBUTE_DIRECTORY : FILE_ATTRIBUTE_ARCHIVE;
    if (!a) a = 0x80;
    if (dir) a = (a | FILE_ATTRIBUTE_DIRECTORY) & ~0x80u;
    e->name = name;
    e->attributes = a;
    if (n->times == TIMES_KNOWN) {
        memcpy(e->times, n->time, sizeof e->times);
    } else {
        e->times[0] = e->times[1] = e->times[2] = filetime_of(&st->st_mtim);
    }
    e->size = dir ? 0 : (int64_t)st->st_size;
    return 1;
}

/* FindFirstFileExW of ``<folder>\*`` for a folder made in a lease (below its top, whose parent
 * the lease does not know): the packed entries, as the daemon would give them, in *blob
 * (malloc'd); 1 done, 0 for the daemon to do it. */
static int lease_find(PCWSTR pattern, int directories_only, uint8_t **blob, uint32_t *len, uint32_t *count) {
    size_t plen = wc_wcslen(pattern);
    if (plen < 3 || pattern[plen - 1] != '*' || (pattern[plen - 2] != '\\' && pattern[plen - 2] != '/') ||
        plen >= LEASE_PATH_MAX)
        return 0;
    WCHAR folder[LEASE_PATH_MAX];
    memcpy(folder, pattern, (plen - 2) * sizeof(WCHAR));
    folder[plen - 2] = 0;
    char rel[LEASE_PATH_MAX], key[LEASE_PATH_MAX], host[LEASE_PATH_MAX + 512];
    lease *l = lease_for(folder, rel, key);
    if (!l) return 0;
    int done = 0;
    found_entry *found = NULL;
    size_t nfound = 0, cap = 0;
    char *names = NULL; /* the names, one after another */
    size_t names_len = 0, names_cap = 0;
    DIR *dir = NULL;
    uint32_t privileges = __atomic_load_n(&head_of(l)->privileges, __ATOMIC_SEQ_CST);
    char *cut = strrchr(key, '\\');
    if (cut && lease_enter(l)) {
        pthread_mutex_lock(&l->lock);
        host_path(l, rel, host, sizeof host);
        lease_name *self = name_find(&l->names, key);
        *cut = 0;
        lease_name *parent = name_find(&l->names, key);
        *cut = '\\';
        struct stat st, pst;
        char parent_host[LEASE_PATH_MAX + 512];
        snprintf(parent_host, sizeof parent_host, "%s", host);
        char *slash = strrchr(parent_host, '/');
        if (slash) *slash = 0;
        int ok = self && self->dir && (!self->has_sd || privileges & PRIV_BACKUP) &&
                 lstat(host, &st) == 0 && lstat(parent_host, &pst) == 0 && (dir = opendir(host)) != NULL;
        found_entry dot, dotdot;
        ok = ok && found_of(self, &st, ".", &dot) && found_of(parent, &pst, "..", &dotdot);
        struct dirent *d;
        size_t klen = strlen(key);
        while (ok && (d = readdir(dir)) != NULL) {
            const char *name = d->d_name;
            if (!strcmp(name, ".") || !strcmp(name, "..") || !strncmp(name, ".wcsim-", 7)) continue;
            size_t n = strlen(name);
            char child[LEASE_PATH_MAX];
            if (klen + 1 + n >= sizeof child) {
                ok = 0;
                break;
            }
            memcpy(child, key, klen);
            child[klen] = '\\';
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)name[i];
                if (c >= 0x7F || c < 0x20) ok = 0; /* a name this table cannot hold: the daemon lists */
                child[klen + 1 + i] = fold(c);
            }
            child[klen + 1 + n] = 0;
            struct stat cst;
            found_entry e;
            if (!ok || fstatat(dirfd(dir), name, &cst, AT_SYMLINK_NOFOLLOW) ||
                !found_of(name_find(&l->names, child), &cst, NULL, &e)) {
                ok = 0;
                break;
            }
            if (directories_only && !S_ISDIR(cst.st_mode)) continue;
            if (names_len + n + 1 > names_cap) {
                size_t bigger = names_cap ? names_cap * 2 : 4096;
                while (bigger < names_len + n + 1) bigger *= 2;
                char *grown = realloc(names, bigger);
                if (!grown) {
                    ok = 0;
                    break;
                }
                names = grown;
                names_cap = bigger;
            }
            memcpy(names + names_len, name, n + 1);
            e.name = (const char *)(uintptr_t)names_len; /* an offset until the names stop moving */
            names_len += n + 1;
            if (nfound == cap) {
                size_t bigger = cap ? cap * 2 : 64;
                found_entry *grown = realloc(found, bigger * sizeof *found);
                if (!grown) {
                    ok = 0;
                    break;
                }
                found = grown;
                cap = bigger;
            }
            found[nfound++] = e;
        }
        pthread_mutex_unlock(&l->lock);
        lease_leave(l);
        if (ok) {
            for (size_t i = 0; i < nfound; i++) found[i].name = names + (size_t)(uintptr_t)found[i].name;
            qsort(found, nfound, sizeof *found, by_name);
            size_t total = 2 * (42 + 4) + names_len * 2;
            for (size_t i = 0; i < nfound; i++) total += 42;
            uint8_t *out = malloc(total), *p = out;
            if (out) {
                found_entry *all[2] = {&dot, &dotdot};
                for (size_t i = 0; i < nfound + 2; i++) {
                    found_entry *e = i < 2 ? all[i] : &found[i - 2];
                    uint16_t n = (uint16_t)strlen(e->name);
                    DWORD tag = 0;
                    memcpy(p, &e->attributes, 4);
                    memcpy(p + 4, e->times, 24);
                    memcpy(p + 28, &e->size, 8);
                    memcpy(p + 36, &tag, 4);
                    memcpy(p + 40, &n, 2);
                    for (uint16_t c = 0; c < n; c++) {
                        uint16_t w = (uint8_t)e->name[c];
                        memcpy(p + 42 + 2 * c, &w, 2);
                    }
                    p += 42 + 2u * n;
                }
                *blob = out;
                *len = (uint32_t)(p - out);
                *count = (uint32_t)(nfound + 2);
                done = 1;
            }
        }
    }
    if (dir) closedir(dir);
    free(found);
    free(names);
    lease_release(l);
    return done;
}

/* What the daemon keeps of ``n`` after ``o`` closes (what WinFs._apply does with it). */
static void note_close(lease_name *n, const k32_obj *o) {
    if (o->security) n->has_sd = 1;
    if (o->reparse) n->reparse = 1;
    if (o->basic_set && o->set_attributes) {
        n->has_attributes = 1;
        n->attributes = o->attributes;
    }
    int given = 0;
    for (int i = 0; i < 4; i++) given += o->basic_set && o->set_times[i] != 0;
    if (given == 4) {
        n->times = TIMES_KNOWN;
        memcpy(n->time, o->set_times, sizeof n->time);
    } else if (given || ((o->wrote || o->streams) && !(o->basic_set && o->set_times[2]))) {
        n->times = TIMES_UNKNOWN; /* the daemon fills in times of its own */
    }
}

/* CloseHandle of a handle opened here: 1 when done, 0 when the lease is over (the daemon adopted
 * the handle: it is closed like one of its own). */
static int lease_close(k32_obj *o, const FILE_BASIC_INFO *b) {
    lease *l = o->lease;
    if (!lease_enter(l)) return 0;
    char key[LEASE_REL_MAX], host[LEASE_PATH_MAX + 512];
    size_t i = 0;
    for (; o->rel[i] && i + 1 < sizeof key; i++) key[i] = fold((unsigned char)o->rel[i]);
    key[i] = 0;
    host_path(l, o->rel, host, sizeof host);
    int ends = 0, by_daemon = 0;
    pthread_mutex_lock(&l->lock);
    lease_name *n = name_find(&l->names, key);
    if (o->delete_pending || o->delete_on_close) {
        /* it goes now; a folder that still holds the simulator's own files (the leased folder
         * keeps its metadata store) is removed by the daemon, before CloseHandle returns */
        int removed = o->directory ? *key && rmdir(host) == 0 : unlink(host) == 0;
        by_daemon = !removed && o->directory && (!*key || errno == ENOTEMPTY);
        if (removed || by_daemon) {
            journal("LeaseDelete", l->id, o->rel, o->directory, NULL, NULL);
            if (n) name_remove(n);
            ends = !*key;
        }
    } else {
        /* a handle that made nothing and changed nothing leaves the daemon nothing to store
         * (WinFs.leased_close): it is not journaled */
        if (o->created || o->basic_set || o->wrote || o->security || o->eas || o->reparse || o->streams)
            journal("LeaseClose", l->id, o->rel, 0, o, b);
        if (n) {
            if (n->opens) n->opens--;
            note_close(n, o);
        }
    }
    __atomic_store_n(&slot_of(l, o->slot)->id, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&l->lock);
    lease_leave(l);
    if (by_daemon) journal_flush(); /* the folder is gone when CloseHandle returns, as on Windows */
    if (ends) { /* the lease's folder is gone: so is the lease (the daemon ends its side) */
        pthread_mutex_lock(&leases_lock);
        for (int k = 0; k < LEASE_MAX; k++)
            if (leases[k] == l) lease_drop_locked(k);
        pthread_mutex_unlock(&leases_lock);
    }
    return 1;
}

/* A handle opened here is about to be used through the daemon: end its lease first. */
static int lease_settle_handle(k32_obj *o) {
    if (!o->lease || lease_over(o->lease)) return 0;
    wc_reply r;
    int ok = wc_request(&r, "LeaseSettle", "q", o->lease->id) == 0;
    if (!answered(&r, ok)) return -1;
    wc_reply_free(&r);
    return 0;
}

static int ring_bell(void) { return wc_oneway_on(journal_fd, "JournalBell", ""); }

/* Wait until the daemon has taken the ring up to ``upto`` (ringing it now and then); 0 then,
 * -1 when it does not (gone, or stuck for RING_PATIENCE_MS). */
static int ring_wait(uint64_t upto) {
    ring_head *h = (ring_head *)journal_ring;
    long waited_us = 0, nap_us = 20;
    while (__atomic_load_n(&h->taken, __ATOMIC_ACQUIRE) < upto) {
        if (waited_us % 100000 < nap_us && ring_bell()) return -1; /* about every 100 ms */
        if (waited_us > RING_PATIENCE_MS * 1000L) return -1;
        struct timespec t = {0, nap_us * 1000L};
        nanosleep(&t, NULL);
        waited_us += nap_us;
        if (nap_us < 2000) nap_us *= 2;
    }
    return 0;
}

static void ring_copy(uint8_t *data, uint64_t at, const void *from, size_t n) {
    size_t off = (size_t)(at % RING_DATA), first = n < RING_DATA - off ? n : RING_DATA - off;
    memcpy(data + off, from, first);
    memcpy(data, (const uint8_t *)from + first, n - first);
}

/* One entry into the ring, or on the socket when it is large (once the ring is empty, so the
 * order holds); 0 when done. */
static int ring_put(const uint8_t *msg, size_t n) {
    ring_head *h = (ring_head *)journal_ring;
    uint64_t at = h->written; /* only this process writes it, under journal_lock */
    size_t need = 4 + n;
    if (need > RING_DATA / 2) return ring_wait(at) ? -1 : wc_send_on(journal_fd, msg, n);
    if (at + need > RING_DATA && ring_wait(at + need - RING_DATA)) return -1;
    uint32_t len = (uint32_t)n;
    ring_copy(journal_ring + RING_HEAD, at, &len, 4);
    ring_copy(journal_ring + RING_HEAD, at + 4, msg, n);
    __atomic_store_n(&h->written, at + need, __ATOMIC_RELEASE);
    return at / RING_BELL != (at + need) / RING_BELL ? ring_bell() : 0;
}

/* The ring of the journal connection ``fd`` (asked of the daemon), or NULL: entries then go on
 * the socket. */
static uint8_t *ring_open(int fd) {
    wc_reply r;
    if (wc_request_on(fd, &r, "JournalRing", "") != 0) return NULL;
    uint8_t *ring = NULL;
    int ring_fd = r.status == 0 && rd_int(&r) == (int64_t)(RING_HEAD + RING_DATA) ? wc_reply_fd(&r) : -1;
    if (ring_fd >= 0) {
        void *m = mmap(NULL, RING_HEAD + RING_DATA, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
        if (m != MAP_FAILED) ring = m;
        close(ring_fd);
    }
    wc_reply_free(&r);
    return ring;
}

static void journal_close(void) {
    if (journal_fd >= 0) close(journal_fd);
    journal_fd = -1;
    if (journal_ring) munmap(journal_ring, RING_HEAD + RING_DATA);
    journal_ring = NULL;
}

/* Wait until the daemon has applied every entry put so far (rung first): for an entry whose
 * effect the daemon makes on the host itself (a folder it removes). */
static void journal_flush(void) {
    pthread_mutex_lock(&journal_lock);
    if (journal_fd >= 0 && journal_ring && ring_wait(((ring_head *)journal_ring)->written)) journal_close();
    pthread_mutex_unlock(&journal_lock);
}

/* One journal entry, put whole under the lock, so the entries of a lease stay in order:
 * LeaseMkdir (a folder made), LeaseDelete (``kind``: a folder), LeaseClose (``o`` and its basic
 * information ``b``). Nonzero when it could not be put. */
static int journal(const char *fn, uint64_t lease_id, const char *rel, int kind, const k32_obj *o,
                   const FILE_BASIC_INFO *b) {
    unsigned rn = (unsigned)strlen(rel);
    size_t n = 0;
    uint8_t *msg;
    if (!o && !strcmp(fn, "LeaseMkdir"))
        msg = wc_encode_oneway(&n, fn, "qb", lease_id, rel, rn);
    else if (!o)
        msg = wc_encode_oneway(&n, fn, "qbu", lease_id, rel, rn, (unsigned)kind);
    else
        msg = wc_encode_oneway(&n, fn, "qqbuqbubbbb", lease_id, o->id, rel, rn, (unsigned)o->created, o->index,
                               o->basic_set ? (const void *)b : NULL, o->basic_set ? (unsigned)sizeof *b : 0u,
                               (unsigned)o->wrote, o->security, o->security_len, o->eas, o->eas_len, o->reparse,
                               o->reparse_len, o->streams, o->streams_len);
    int rc = -1;
    pthread_mutex_lock(&journal_lock);
    if (journal_fd >= 0 && msg) {
        rc = journal_ring ? ring_put(msg, n) : wc_send_on(journal_fd, msg, n);
        if (rc) journal_close(); /* the service went away: no lease can be kept */
    }
    pthread_mutex_unlock(&journal_lock);
    free(msg);
    return rc;
}

/* Learn again what the leased folder holds (LeaseListing), keeping the counts of handles open
 * here; 0 when done, -1 when the lease is over. */
static int lease_refresh(lease *l) {
    wc_reply r;
    if (wc_request(&r, "LeaseListing", "q", l->id) != 0) return -1;
    if (r.status != 0) {
        wc_reply_free(&r);
        return -1;
    }
    uint64_t generation = (uint64_t)rd_int(&r);
    const uint8_t *p, *end;
    uint32_t n;
    if (!generation || wc_reply_bytes(&r, &p, &n)) {
        wc_reply_free(&r);
        return -1;
    }
    end = p + n;
    name_table fresh;
    int ok = table_init(&fresh, 64) && name_add(&fresh, "", 1); /* the folder itself */
    while (ok && p < end) {
        uint16_t len;
        char key[LEASE_REL_MAX];
        if (end - p < 2) {
            ok = 0;
            break;
        }
        memcpy(&len, p, 2);
        p += 2;
        if ((size_t)(end - p) < (size_t)len + 39 || len >= LEASE_REL_MAX) { /* name, then the entry */
            ok = 0;
            break;
        }
        for (uint16_t i = 0; i < len; i++) key[i] = fold(p[i]);
        key[len] = 0;
        p += len;
        lease_name *e = name_add(&fresh, key, p[0]);
        if (!e) {
            ok = 0;
            break;
        }
        memcpy(&e->attributes, p + 1, 4);
        memcpy(e->time, p + 5, 32);
        e->has_sd = p[37];
        e->reparse = p[38];
        e->has_attributes = 1;
        e->times = TIMES_KNOWN;
        p += 39;
    }
    wc_reply_free(&r);
    if (!ok) {
        table_free(&fresh);
        return -1;
    }
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->names.cap; i++) { /* handles open here keep counting */
        lease_name *old = &l->names.cells[i], *now;
        if (old->key && old->key != TOMB && old->opens && (now = name_find(&fresh, old->key))) now->opens = old->opens;
    }
    table_free(&l->names);
    l->names = fresh;
    __atomic_store_n(&l->generation, (uint32_t)generation, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

/* The daemon leased the folder ``path`` it just made: take the lease into the table (or hand it
 * straight back when that cannot be done). */
static void lease_install(PCWSTR path, wc_reply *r, uint64_t id) {
    const uint8_t *host;
    uint32_t host_len;
    int page_fd = -1;
    if (wc_reply_bytes(r, &host, &host_len) || (page_fd = wc_reply_fd(r)) < 0) goto back;
    lease *l = calloc(1, sizeof *l);
    if (!l) goto back;
    pthread_mutex_init(&l->lock, NULL);
    l->id = id;
    l->pid = lease_pid;
    l->refs = 1;
    table_init(&l->names, 64);
    size_t n = wc_wcslen(path);
    while (n && path[n - 1] == '\\') n--;
    l->prefix = malloc(n + 1);
    l->host = malloc(host_len + 1);
    void *page = mmap(NULL, LEASE_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
    close(page_fd);
    page_fd = -1;
    if (page != MAP_FAILED) l->page = page;
    if (!l->names.cells || !l->prefix || !l->host || !l->page) {
        lease_free(l);
        goto back;
    }
    for (size_t i = 0; i < n; i++) l->prefix[i] = fold(path[i]);
    l->prefix[n] = 0;
    l->prefix_len = n;
    memcpy(l->host, host, host_len);
    l->host[host_len] = 0;
    if (!name_add(&l->names, "", 1)) { /* the folder itself: made by the daemon, nothing stored for it */
        lease_free(l);
        goto back;
    }
    pthread_mutex_lock(&journal_lock);
    /* The daemon writes nothing on the journal unasked: anything to read there (its end, most
     * likely) means the service restarted, and the journal and every lease were the old one's. */
    struct pollfd peek = {journal_fd, POLLIN, 0};
    int stale = journal_fd >= 0 && poll(&peek, 1, 0) != 0;
    if (stale) journal_close();
    if (journal_fd < 0 && (journal_fd = wc_connect()) >= 0) journal_ring = ring_open(journal_fd);
    int journaled = journal_fd >= 0;
    pthread_mutex_unlock(&journal_lock);
    int slot = -1;
    pthread_mutex_lock(&leases_lock);
    for (int i = 0; i < LEASE_MAX && stale; i++)
        if (leases[i]) lease_drop_locked(i);
    for (int i = 0; i < LEASE_MAX && slot < 0 && journaled; i++)
        if (!leases[i]) slot = i;
    if (slot >= 0) leases[slot] = l;
    pthread_mutex_unlock(&leases_lock);
    if (slot >= 0) return;
    lease_free(l);
back:
    if (page_fd >= 0) close(page_fd);
    wc_reply back_r;
    if (wc_request(&back_r, "LeaseSettle", "q", id) == 0) wc_reply_free(&back_r);
}

/* A forked child holds none of its parent's leases, and must not write into its journal. */
static void leases_after_fork(void) {
    lease_pid = getpid();
    for (int i = 0; i < LEASE_MAX; i++) leases[i] = NULL; /* the parent's: left as they are */
    journal_close(); /* the parent's ring: this process must not write into it */
    pthread_mutex_init(&journal_lock, NULL);
    pthread_mutex_init(&leases_lock, NULL);
}

__attribute__((constructor)) static void leases_init(void) {
    lease_pid = getpid();
    pthread_atfork(NULL, NULL, leases_after_fork);
}

/* Whether this process may take one more lease: a free place in the table, after handing the
 * oldest lease back if need be (a long-lived process makes many folders). */
static int lease_room(void) {
    pid_t me = lease_pid;
    uint64_t oldest_id = 0;
    pthread_mutex_lock(&leases_lock);
    for (int i = 0; i < LEASE_MAX; i++) {
        lease *l = leases[i];
        if (l && (l->pid != me || lease_over(l))) lease_drop_locked(i);
        if (!leases[i]) {
            pthread_mutex_unlock(&leases_lock);
            return 1;
        }
        if (!oldest_id || leases[i]->id < oldest_id) oldest_id = leases[i]->id;
    }
    pthread_mutex_unlock(&leases_lock);
    wc_reply r;
    if (wc_request(&r, "LeaseSettle", "q", oldest_id) != 0) return 0;
    wc_reply_free(&r);
    pthread_mutex_lock(&leases_lock);
    for (int i = 0; i < LEASE_MAX; i++)
        if (leases[i] && leases[i]->id == oldest_id) lease_drop_locked(i);
    pthread_mutex_unlock(&leases_lock);
    return 1;
}

/* ---- CreateFileW and CloseHandle -------------------------------------------------------------- */

WC_API HANDLE CreateFileW(PCWSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,
                          SECURITY_ATTRIBUTES *lpSecurityAttributes, DWORD dwCreationDisposition,
                          DWORD dwFlagsAndAttributes, HANDLE hTemplateFile) {
    (void)lpSecurityAttributes;
    (void)hTemplateFile;
    if (!lpFileName) {
        t_last_error = ERROR_INVALID_PARAMETER;
        return INVALID_HANDLE;
    }
    if (!lpSecurityAttributes && !hTemplateFile) {
        HANDLE local = lease_create(lpFileName, dwDesiredAccess, dwShareMode, dwCreationDisposition,
                                    dwFlagsAndAttributes);
        if (local) return local;
    }
    wc_reply r;
    int ok = wc_request(&r, "CreateFileW", "suuuu", lpFileName, dwDesiredAccess, dwShareMode, dwCreationDisposition,
                        dwFlagsAndAttributes) == 0;
    if (!answered(&r, ok)) return INVALID_HANDLE;
    k32_obj *o = calloc(1, sizeof *o);
    if (!o) {
        wc_reply_free(&r);
        t_last_error = ERROR_NOT_ENOUGH_MEMORY;
        return INVALID_HANDLE;
    }
    o->kind = OBJ_FILE;
    o->id = (uint64_t)rd_int(&r);
    int existed = (int)rd_int(&r);
    o->attributes = (DWORD)rd_int(&r);
    for (int i = 0; i < 4; i++) o->times[i] = rd_int(&r);
    o->serial = (DWORD)rd_int(&r);
    o->index = (uint64_t)rd_int(&r);
    o->links = (DWORD)rd_int(&r);
    o->reparse_tag = (DWORD)rd_int(&r);
    o->directory = (int)rd_int(&r);
    (void)rd_int(&r); /* size: asked of the descriptor when needed */
    o->access = (DWORD)rd_int(&r);
    o->privileges = (DWORD)rd_int(&r);
    o->fd = wc_reply_fd(&r);
    o->delete_on_close = (dwFlagsAndAttributes & FILE_FLAG_DELETE_ON_CLOSE) != 0;
    wc_reply_free(&r);
    add_obj(o);
    t_last_error = existed && (dwCreationDisposition == CREATE_ALWAYS || dwCreationDisposition == OPEN_ALWAYS)
                       ? ERROR_ALREADY_EXISTS
                       : 0;
    return handle_of(o);
}

static void pack_basic(const k32_obj *o, FILE_BASIC_INFO *b) {
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 4; i++) (&b->CreationTime)[i] = o->set_times[i];
    b->FileAttributes = o->set_attributes;
}

WC_API BOOL CloseHandle(HANDLE hObject) {
    if (hObject == INVALID_HANDLE) return TRUE_; /* the current process's pseudo handle */
    if (!hObject) return fail(ERROR_INVALID_HANDLE);
    k32_obj *o = find_obj(hObject, OBJ_FILE, 1);
    if (o) {
        FILE_BASIC_INFO b;
        pack_basic(o, &b);
        if (o->lease && lease_close(o, &b)) {
            free_obj(o);
            t_last_error = 0;
            return TRUE_;
        }
        /* A folder is gone when its last handle's CloseHandle returns, to anyone looking: that
         * close waits for the daemon. Others stay one-way (its next call sees them, after the
         * barrier). */
        (void)wc_call_waiting(o->directory && (o->delete_pending || o->delete_on_close), "CloseHandle", "qbubbbb",
                              (uint64_t)o->id, o->basic_set ? (void *)&b : NULL, o->basic_set ? (unsigned)sizeof b : 0u,
                              (unsigned)o->wrote, o->security, o->security_len, o->eas, o->eas_len, o->reparse,
                              o->reparse_len, o->streams, o->streams_len);
        free_obj(o);
        t_last_error = 0;
        return TRUE_;
    }
    if (find_obj(hObject, OBJ_FIND, 0)) return fail(ERROR_INVALID_HANDLE); /* FindClose closes those */
    uint64_t id = wc_handle_id(hObject);
    if (!id) return fail(ERROR_INVALID_HANDLE);
    return simple("CloseKernelHandle", "q", id);
}

/* ---- data ------------------------------------------------------------------------------------- */

WC_API BOOL ReadFile(HANDLE hFile, void *lpBuffer, DWORD nNumberOfBytesToRead, DWORD *lpNumberOfBytesRead,
                     OVERLAPPED *lpOverlapped) {
    k32_obj *o = file_of(hFile);
    if (lpNumberOfBytesRead) *lpNumberOfBytesRead = 0;
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (o->directory) return fail(ERROR_INVALID_FUNCTION);
    if (!(o->access & FILE_READ_DATA)) return fail(ERROR_ACCESS_DENIED);
    if (nNumberOfBytesToRead && !lpBuffer) return fail(ERROR_INVALID_PARAMETER);
    ssize_t n;
    do {
        n = lpOverlapped ? pread(o->fd, lpBuffer, nNumberOfBytesToRead,
                                 (off_t)(((uint64_t)lpOverlapped->OffsetHigh << 32) | lpOverlapped->Offset))
                         : read(o->fd, lpBuffer, nNumberOfBytesToRead);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return fail(errno_code(errno));
    if (lpNumberOfBytesRead) *lpNumberOfBytesRead = (DWORD)n;
    if (n == 0 && lpOverlapped && nNumberOfBytesToRead) return fail(ERROR_HANDLE_EOF);
    t_last_error = 0;
    return TRUE_;
}

static int write_all(int fd, const uint8_t *p, size_t n, int64_t *offset) {
    while (n) {
        ssize_t w = offset ? pwrite(fd, p, n, (off_t)*offset) : write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        if (offset) *offset += w;
    }
    return 0;
}

WC_API BOOL WriteFile(HANDLE hFile, const void *lpBuffer, DWORD nNumberOfBytesToWrite,
                      DWORD *lpNumberOfBytesWritten, OVERLAPPED *lpOverlapped) {
    k32_obj *o = file_of(hFile);
    if (lpNumberOfBytesWritten) *lpNumberOfBytesWritten = 0;
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (o->directory) return fail(ERROR_INVALID_FUNCTION);
    if (!(o->access & (FILE_WRITE_DATA | FILE_APPEND_DATA))) return fail(ERROR_ACCESS_DENIED);
    if (nNumberOfBytesToWrite && !lpBuffer) return fail(ERROR_INVALID_PARAMETER);
    int64_t offset = lpOverlapped ? (int64_t)(((uint64_t)lpOverlapped->OffsetHigh << 32) | lpOverlapped->Offset) : 0;
    if (write_all(o->fd, lpBuffer, nNumberOfBytesToWrite, lpOverlapped ? &offset : NULL)) return fail(errno_code(errno));
    if (nNumberOfBytesToWrite) o->wrote = 1;
    if (lpNumberOfBytesWritten) *lpNumberOfBytesWritten = nNumberOfBytesToWrite;
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL SetFilePointerEx(HANDLE hFile, int64_t liDistanceToMove, int64_t *lpNewFilePointer, DWORD dwMoveMethod) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (dwMoveMethod > 2) return fail(ERROR_INVALID_PARAMETER);
    off_t at = lseek(o->fd, 0, dwMoveMethod == 0 ? SEEK_SET : dwMoveMethod == 1 ? SEEK_CUR : SEEK_END);
    if (at < 0) return fail(errno_code(errno));
    int64_t target = (dwMoveMethod == 0 ? 0 : (int64_t)at) + liDistanceToMove;
    if (target < 0) return fail(ERROR_NEGATIVE_SEEK);
    if (lseek(o->fd, (off_t)target, SEEK_SET) < 0) return fail(errno_code(errno));
    if (lpNewFilePointer) *lpNewFilePointer = target;
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL GetFileSizeEx(HANDLE hFile, int64_t *lpFileSize) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (!lpFileSize) return fail(ERROR_INVALID_PARAMETER);
    struct stat st;
    if (fstat(o->fd, &st)) return fail(errno_code(errno));
    *lpFileSize = o->directory ? 0 : (int64_t)st.st_size;
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL SetEndOfFile(HANDLE hFile) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (o->directory || !(o->access & FILE_WRITE_DATA)) return fail(ERROR_ACCESS_DENIED);
    off_t at = lseek(o->fd, 0, SEEK_CUR);
    if (at < 0 || ftruncate(o->fd, at)) return fail(errno_code(errno));
    o->wrote = 1;
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL FlushFileBuffers(HANDLE hFile) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (!(o->access & (FILE_WRITE_DATA | FILE_APPEND_DATA))) return fail(ERROR_ACCESS_DENIED);
    if (fsync(o->fd)) return fail(errno_code(errno));
    t_last_error = 0;
    return TRUE_;
}

/* ---- information by handle -------------------------------------------------------------------- */

enum { FileBasicInfo = 0, FileStandardInfo = 1, FileDispositionInfo = 4, FileAttributeTagInfo = 9,
       FileIdInfo = 0x12 };

static void current_times(const k32_obj *o, int64_t out[4]) {
    for (int i = 0; i < 4; i++) out[i] = o->basic_set && o->set_times[i] > 0 ? o->set_times[i] : o->times[i];
}

WC_API BOOL GetFileInformationByHandleEx(HANDLE hFile, int FileInformationClass, void *lpFileInformation,
                                         DWORD dwBufferSize) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (!lpFileInformation) return fail(ERROR_INVALID_PARAMETER);
    struct stat st; /* asked only by the classes that need the backing file's size or links */
    switch (FileInformationClass) {
    case FileBasicInfo: {
        if (dwBufferSize < sizeof(FILE_BASIC_INFO)) return fail(ERROR_BAD_LENGTH);
        if (!(o->access & FILE_READ_ATTRIBUTES)) return fail(ERROR_ACCESS_DENIED);
        FILE_BASIC_INFO *b = lpFileInformation;
        int64_t t[4];
        current_times(o, t);
        b->CreationTime = t[0];
        b->LastAccessTime = t[1];
        b->LastWriteTime = t[2];
        b->ChangeTime = t[3];
        b->FileAttributes = o->attributes;
        break;
    }
    case FileStandardInfo: {
        if (dwBufferSize < sizeof(FILE_STANDARD_INFO)) return fail(ERROR_BAD_LENGTH);
        if (fstat(o->fd, &st)) return fail(errno_code(errno));
        FILE_STANDARD_INFO *s = lpFileInformation;
        memset(s, 0, sizeof *s);
        s->EndOfFile = o->directory ? 0 : (int64_t)st.st_size;
        s->AllocationSize = (s->EndOfFile + 4095) & ~(int64_t)4095;
        s->NumberOfLinks = o->directory ? 1 : (DWORD)st.st_nlink;
        s->DeletePending = (BOOLEAN)o->delete_pending;
        s->Directory = (BOOLEAN)o->directory;
        break;
    }
    case FileAttributeTagInfo: {
        if (dwBufferSize < sizeof(FILE_ATTRIBUTE_TAG_INFO)) return fail(ERROR_BAD_LENGTH);
        if (!(o->access & FILE_READ_ATTRIBUTES)) return fail(ERROR_ACCESS_DENIED);
        FILE_ATTRIBUTE_TAG_INFO *a = lpFileInformation;
        a->FileAttributes = o->attributes;
        a->ReparseTag = o->attributes & FILE_ATTRIBUTE_REPARSE_POINT ? o->reparse_tag : 0;
        break;
    }
    case FileIdInfo: {
        if (dwBufferSize < sizeof(FILE_ID_INFO)) return fail(ERROR_BAD_LENGTH);
        FILE_ID_INFO *i = lpFileInformation;
        memset(i, 0, sizeof *i);
        i->VolumeSerialNumber = o->serial;
        memcpy(i->FileId, &o->index, 8);
        break;
    }
    default:
        return fail(ERROR_INVALID_PARAMETER);
    }
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL GetFileInformationByHandle(HANDLE hFile, BY_HANDLE_FILE_INFORMATION *lpFileInformation) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (!lpFileInformation) return fail(ERROR_INVALID_PARAMETER);
    struct stat st;
    if (fstat(o->fd, &st)) return fail(errno_code(errno));
    int64_t t[4];
    current_times(o, t);
    BY_HANDLE_FILE_INFORMATION *b = lpFileInformation;
    b->dwFileAttributes = o->attributes;
    FILETIME *ft[3] = {&b->ftCreationTime, &b->ftLastAccessTime, &b->ftLastWriteTime};
    for (int i = 0; i < 3; i++) {
        ft[i]->dwLowDateTime = (DWORD)t[i];
        ft[i]->dwHighDateTime = (DWORD)((uint64_t)t[i] >> 32);
    }
    uint64_t size = o->directory ? 0 : (uint64_t)st.st_size;
    b->dwVolumeSerialNumber = o->serial;
    b->nFileSizeHigh = (DWORD)(size >> 32);
    b->nFileSizeLow = (DWORD)size;
    b->nNumberOfLinks = o->directory ? 1 : (DWORD)st.st_nlink;
    b->nFileIndexHigh = (DWORD)(o->index >> 32);
    b->nFileIndexLow = (DWORD)o->index;
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL SetFileInformationByHandle(HANDLE hFile, int FileInformationClass, void *lpFileInformation,
                                       DWORD dwBufferSize) {
    k32_obj *o = file_of(hFile);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (!lpFileInformation) return fail(ERROR_INVALID_PARAMETER);
    if (FileInformationClass == FileBasicInfo) {
        if (dwBufferSize < sizeof(FILE_BASIC_INFO)) return fail(ERROR_BAD_LENGTH);
        if (!(o->access & FILE_WRITE_ATTRIBUTES)) return fail(ERROR_ACCESS_DENIED);
        const FILE_BASIC_INFO *b = lpFileInformation;
        if ((b->FileAttributes & FILE_ATTRIBUTE_DIRECTORY) && !o->directory) return fail(ERROR_INVALID_PARAMETER);
        const int64_t *t = &b->CreationTime;
        for (int i = 0; i < 4; i++)
            if (t[i] != 0 && t[i] != -1) o->set_times[i] = t[i];
        if (b->FileAttributes) {
            o->set_attributes = b->FileAttributes;
            DWORD keep = o->attributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT);
            DWORD settable = b->FileAttributes == 0x80 ? 0 : b->FileAttributes & 0x2B127;
            o->attributes = (settable | keep) ? (settable | keep) : 0x80;
        }
        o->basic_set = 1;
        t_last_error = 0;
        return TRUE_;
    }
    if (FileInformationClass == FileDispositionInfo) {
        if (dwBufferSize < 1) return fail(ERROR_BAD_LENGTH);
        if (!(o->access & DELETE_ACCESS)) return fail(ERROR_ACCESS_DENIED);
        int del = *(const BOOLEAN *)lpFileInformation != 0;
        BOOL done;
        if (o->lease && lease_disposition(o, del, &done)) return done;
        FILE_BASIC_INFO b;
        pack_basic(o, &b);
        wc_reply r;
        int ok = wc_request(&r, "SetFileDisposition", "qub", (uint64_t)o->id, (unsigned)del,
                            o->basic_set ? (void *)&b : NULL, o->basic_set ? (unsigned)sizeof b : 0u) == 0;
        if (!answered(&r, ok)) return FALSE_;
        wc_reply_free(&r);
        o->delete_pending = del;
        return TRUE_;
    }
    return fail(ERROR_INVALID_PARAMETER);
}

/* ---- BackupWrite -------------------------------------------------------------------------------- */

typedef struct {
    int writing;
    /* writing: the stream being parsed */
    uint8_t hdr[20];
    uint32_t hdr_have;
    DWORD id;
    uint32_t name_size, name_have;
    uint8_t name[512];
    int64_t body_left;
    uint8_t *body;
    uint32_t body_have;
    int64_t data_offset;
    /* reading: the streams before the data, the data, the streams after it */
    uint8_t *head, *tail;
    uint32_t head_len, tail_len;
    int has_data;
    int64_t data_size, pos;
} backup_ctx;

static void free_ctx(backup_ctx *c) {
    if (!c) return;
    free(c->body);
    free(c->head);
    free(c->tail);
    free(c);
}

static DWORD rd32(const uint8_t *p) {
    DWORD v;
    memcpy(&v, p, 4);
    return v;
}

static int dir_has_children(int fd) {
    int d = dup(fd);
    if (d < 0) return 0;
    DIR *dir = fdopendir(d);
    if (!dir) {
        close(d);
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strncmp(e->d_name, ".wcsim-", 7)) continue;
        found = 1;
        break;
    }
    closedir(dir);
    return found;
}

static DWORD keep_blob(uint8_t **slot, uint32_t *len, const uint8_t *p, uint32_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) return ERROR_NOT_ENOUGH_MEMORY;
    memcpy(copy, p, n);
    free(*slot);
    *slot = copy;
    *len = n;
    return 0;
}

/* Checks and keeps a finished metadata stream; 0 or a Win32 error. */
static DWORD finish_stream(k32_obj *o, backup_ctx *c, int process_security) {
    switch (c->id) {
    case BACKUP_SECURITY_DATA: {
        if (!process_security) return 0;
        if (c->body_have < 20 || c->body[0] != 1) return ERROR_INVALID_DATA;
        uint16_t control;
        memcpy(&control, c->body + 2, 2);
        DWORD owner = rd32(c->body + 4), group = rd32(c->body + 8);
        DWORD need = 0;
        if (control & 0x4) need |= WRITE_DAC;
        if (owner || group) need |= WRITE_OWNER;
        if (control & 0x10) need |= ACCESS_SYSTEM_SECURITY;
        if ((o->access & need) != need) return ERROR_ACCESS_DENIED;
        if (owner && !(o->privileges & PRIV_RESTORE)) {
            /* Without SeRestorePrivilege a caller may only name the Administrators group (elevated). */
            static const uint8_t admins[16] = {1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0};
            if (!(o->privileges & PRIV_ELEVATED) || owner + 16 > c->body_have || memcmp(c->body + owner, admins, 16))
                return ERROR_INVALID_OWNER;
        }
        return keep_blob(&o->security, &o->security_len, c->body, c->body_have);
    }
    case BACKUP_EA_DATA:
        if (!(o->access & FILE_WRITE_EA)) return ERROR_ACCESS_DENIED;
        return keep_blob(&o->eas, &o->eas_len, c->body, c->body_have);
    case BACKUP_REPARSE_DATA:
        if (!(o->access & (FILE_WRITE_ATTRIBUTES | FILE_WRITE_DATA))) return ERROR_ACCESS_DENIED;
        if (o->directory && dir_has_children(o->fd)) return ERROR_DIR_NOT_EMPTY;
        if (c->body_have >= 4) o->reparse_tag = rd32(c->body);
        o->attributes |= FILE_ATTRIBUTE_REPARSE_POINT;
        return keep_blob(&o->reparse, &o->reparse_len, c->body, c->body_have);
    case BACKUP_ALTERNATE_DATA: {
        if (!(o->access & FILE_WRITE_DATA)) return ERROR_ACCESS_DENIED;
        /* ":name:$DATA" -> "name" */
        const uint16_t *w = (const uint16_t *)c->name;
        uint32_t n = c->name_size / 2, start = 0, end = n;
        if (n && w[0] == ':') start = 1;
        for (uint32_t i = start; i < n; i++)
            if (w[i] == ':') {
                end = i;
                break;
            }
        uint32_t chars = end - start;
        uint32_t need = 2 + chars * 2 + 4 + c->body_have;
        if (o->streams_len + need > o->streams_cap) {
            uint32_t cap = o->streams_cap ? o->streams_cap * 2 : 256;
            while (cap < o->streams_len + need) cap *= 2;
            uint8_t *p = realloc(o->streams, cap);
            if (!p) return ERROR_NOT_ENOUGH_MEMORY;
            o->streams = p;
            o->streams_cap = cap;
        }
        uint8_t *p = o->streams + o->streams_len;
        uint16_t c16 = (uint16_t)chars;
        memcpy(p, &c16, 2);
        memcpy(p + 2, w + start, chars * 2);
        memcpy(p + 2 + chars * 2, &c->body_have, 4);
        if (c->body_have) memcpy(p + 6 + chars * 2, c->body, c->body_have);
        o->streams_len += need;
        o->wrote = 1;
        return 0;
    }
    default:
        return 0;
    }
}

/* What BackupRead and BackupWrite share: the context argument, an abort (which frees the context)
 * and the handle. Returns 1 when the call ends here (its result in *result), 0 to go on with *o. */
static int backup_enter(HANDLE h, BOOL abort, void **ctx, DWORD *count, k32_obj **o, BOOL *result) {
    if (!ctx) {
        *result = fail(ERROR_INVALID_PARAMETER);
        return 1;
    }
    if (count) *count = 0;
    if (abort) {
        free_ctx(*ctx);
        *ctx = NULL;
        t_last_error = 0;
        *result = TRUE_;
        return 1;
    }
    *o = file_of(h);
    if (!*o) {
        *result = fail(ERROR_INVALID_HANDLE);
        return 1;
    }
    return 0;
}

static int keeps_body(DWORD id) {
    return id == BACKUP_SECURITY_DATA || id == BACKUP_EA_DATA || id == BACKUP_REPARSE_DATA ||
           id == BACKUP_ALTERNATE_DATA || id == BACKUP_SPARSE_BLOCK;
}

WC_API BOOL BackupWrite(HANDLE hFile, uint8_t *lpBuffer, DWORD nNumberOfBytesToWrite, DWORD *lpNumberOfBytesWritten,
                        BOOL bAbort, BOOL bProcessSecurity, void **lpContext) {
    k32_obj *o;
    BOOL ended;
    if (backup_enter(hFile, bAbort, lpContext, lpNumberOfBytesWritten, &o, &ended)) return ended;
    backup_ctx *c = *lpContext;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return fail(ERROR_NOT_ENOUGH_MEMORY);
        c->writing = 1;
        *lpContext = c;
    }
    if (!c->writing) return fail(ERROR_INVALID_PARAMETER);
    const uint8_t *p = lpBuffer;
    uint32_t left = nNumberOfBytesToWrite;
    if (left && !p) return fail(ERROR_INVALID_PARAMETER);
    while (left) {
        if (c->hdr_have < 20) {
            uint32_t n = 20 - c->hdr_have < left ? 20 - c->hdr_have : left;
            memcpy(c->hdr + c->hdr_have, p, n);
            c->hdr_have += n;
            p += n;
            left -= n;
            if (c->hdr_have < 20) break;
            c->id = rd32(c->hdr);
            memcpy(&c->body_left, c->hdr + 8, 8);
            c->name_size = rd32(c->hdr + 16);
            c->name_have = 0;
            if (c->name_size > sizeof c->name || c->body_left < 0) return fail(ERROR_INVALID_DATA);
            if (c->id == BACKUP_DATA && c->body_left && !(o->access & FILE_WRITE_DATA)) return fail(ERROR_ACCESS_DENIED);
            if (keeps_body(c->id)) {
                if ((uint64_t)c->body_left > MAX_METADATA_STREAM) return fail(ERROR_NOT_ENOUGH_MEMORY);
                free(c->body);
                c->body = malloc(c->body_left ? (size_t)c->body_left : 1);
                if (!c->body) return fail(ERROR_NOT_ENOUGH_MEMORY);
                c->body_have = 0;
            }
        }
        if (c->name_have < c->name_size) {
            uint32_t n = c->name_size - c->name_have < left ? c->name_size - c->name_have : left;
            memcpy(c->name + c->name_have, p, n);
            c->name_have += n;
            p += n;
            left -= n;
            if (c->name_have < c->name_size) break;
        }
        uint32_t n = c->body_left < (int64_t)left ? (uint32_t)c->body_left : left;
        if (n) {
            if (c->id == BACKUP_DATA) {
                if (!o->directory && write_all(o->fd, p, n, &c->data_offset)) return fail(errno_code(errno));
                o->wrote = 1;
            } else if (keeps_body(c->id)) {
                memcpy(c->body + c->body_have, p, n);
                c->body_have += n;
            }
            p += n;
            left -= n;
            c->body_left -= n;
        }
        if (c->body_left == 0) {
            DWORD err = 0;
            if (c->id == BACKUP_SPARSE_BLOCK) {
                if (c->body_have >= 8) {
                    int64_t at;
                    memcpy(&at, c->body, 8);
                    if (!o->directory && write_all(o->fd, c->body + 8, c->body_have - 8, &at)) err = errno_code(errno);
                    o->wrote = 1;
                }
            } else {
                err = finish_stream(o, c, bProcessSecurity);
            }
            c->hdr_have = 0;
            c->body_have = 0;
            if (err) return fail(err);
        }
    }
    if (lpNumberOfBytesWritten) *lpNumberOfBytesWritten = nNumberOfBytesToWrite;
    t_last_error = 0;
    return TRUE_;
}

/* ---- BackupRead ---------------------------------------------------------------------------------- */

WC_API BOOL BackupRead(HANDLE hFile, uint8_t *lpBuffer, DWORD nNumberOfBytesToRead, DWORD *lpNumberOfBytesRead,
                       BOOL bAbort, BOOL bProcessSecurity, void **lpContext) {
    k32_obj *o;
    BOOL ended;
    if (backup_enter(hFile, bAbort, lpContext, lpNumberOfBytesRead, &o, &ended)) return ended;
    backup_ctx *c = *lpContext;
    if (!c) {
        if (lease_settle_handle(o)) return FALSE_;
        wc_reply r;
        int ok = wc_request(&r, "BackupReadInfo", "qu", (uint64_t)o->id, (unsigned)(bProcessSecurity != 0)) == 0;
        if (!answered(&r, ok)) return FALSE_;
        c = calloc(1, sizeof *c);
        if (!c) {
            wc_reply_free(&r);
            return fail(ERROR_NOT_ENOUGH_MEMORY);
        }
        const uint8_t *b;
        uint32_t n;
        wc_reply_bytes(&r, &b, &n);
        c->head = malloc(n ? n : 1);
        if (c->head && n) memcpy(c->head, b, n);
        c->head_len = n;
        wc_reply_bytes(&r, &b, &n);
        c->tail = malloc(n ? n : 1);
        if (c->tail && n) memcpy(c->tail, b, n);
        c->tail_len = n;
        c->has_data = (int)rd_int(&r);
        wc_reply_free(&r);
        if (!c->head || !c->tail) {
            free_ctx(c);
            return fail(ERROR_NOT_ENOUGH_MEMORY);
        }
        if (c->has_data) {
            if (!(o->access & FILE_READ_DATA)) {
                free_ctx(c);
                return fail(ERROR_ACCESS_DENIED);
            }
            struct stat st;
            if (fstat(o->fd, &st)) {
                free_ctx(c);
                return fail(errno_code(errno));
            }
            c->data_size = st.st_size;
        }
        *lpContext = c;
    }
    if (c->writing) return fail(ERROR_INVALID_PARAMETER);
    if (nNumberOfBytesToRead && !lpBuffer) return fail(ERROR_INVALID_PARAMETER);
    /* The stream: head | DATA header (20 bytes) and data | tail. */
    int64_t data_hdr_at = c->head_len, data_at = data_hdr_at + (c->has_data ? 20 : 0);
    int64_t tail_at = data_at + (c->has_data ? c->data_size : 0), end = tail_at + c->tail_len;
    uint32_t done = 0;
    while (done < nNumberOfBytesToRead && c->pos < end) {
        uint32_t room = nNumberOfBytesToRead - done;
        if (c->pos < data_hdr_at) {
            uint32_t n = (uint32_t)(data_hdr_at - c->pos) < room ? (uint32_t)(data_hdr_at - c->pos) : room;
            memcpy(lpBuffer + done, c->head + c->pos, n);
            done += n;
            c->pos += n;
        } else if (c->pos < data_at) {
            uint8_t hdr[20];
            DWORD id = BACKUP_DATA, attributes = 0, name = 0;
            memcpy(hdr, &id, 4);
            memcpy(hdr + 4, &attributes, 4);
            memcpy(hdr + 8, &c->data_size, 8);
            memcpy(hdr + 16, &name, 4);
            uint32_t off = (uint32_t)(c->pos - data_hdr_at);
            uint32_t n = 20 - off < room ? 20 - off : room;
            memcpy(lpBuffer + done, hdr + off, n);
            done += n;
            c->pos += n;
        } else if (c->pos < tail_at) {
            int64_t want = tail_at - c->pos < room ? tail_at - c->pos : room;
            ssize_t n;
            do {
                n = pread(o->fd, lpBuffer + done, (size_t)want, (off_t)(c->pos - data_at));
            } while (n < 0 && errno == EINTR);
            if (n < 0) return fail(errno_code(errno));
            if (n == 0) { /* the file shrank meanwhile: the stream would lie about its size */
                return fail(ERROR_INVALID_DATA);
            }
            done += (uint32_t)n;
            c->pos += n;
        } else {
            uint32_t off = (uint32_t)(c->pos - tail_at);
            uint32_t n = c->tail_len - off < room ? c->tail_len - off : room;
            memcpy(lpBuffer + done, c->tail + off, n);
            done += n;
            c->pos += n;
        }
    }
    if (lpNumberOfBytesRead) *lpNumberOfBytesRead = done;
    t_last_error = 0;
    return TRUE_;
}

/* ---- path calls -------------------------------------------------------------------------------- */

static BOOL simple(const char *fn, const char *fmt, ...) {
    /* Only forms with up to three arguments of these kinds are used: s, ss, su, ssu, q. */
    va_list ap;
    va_start(ap, fmt);
    wc_reply r;
    int ok;
    if (!strcmp(fmt, "s")) {
        PCWSTR a = va_arg(ap, PCWSTR);
        ok = wc_request(&r, fn, "s", a) == 0;
    } else if (!strcmp(fmt, "ss")) {
        PCWSTR a = va_arg(ap, PCWSTR), b = va_arg(ap, PCWSTR);
        ok = wc_request(&r, fn, "ss", a, b) == 0;
    } else if (!strcmp(fmt, "su")) {
        PCWSTR a = va_arg(ap, PCWSTR);
        unsigned b = va_arg(ap, unsigned);
        ok = wc_request(&r, fn, "su", a, b) == 0;
    } else if (!strcmp(fmt, "ssu")) {
        PCWSTR a = va_arg(ap, PCWSTR), b = va_arg(ap, PCWSTR);
        unsigned c = va_arg(ap, unsigned);
        ok = wc_request(&r, fn, "ssu", a, b, c) == 0;
    } else {
        uint64_t a = va_arg(ap, uint64_t);
        ok = wc_request(&r, fn, "q", a) == 0;
    }
    va_end(ap);
    if (!answered(&r, ok)) return FALSE_;
    wc_reply_free(&r);
    return TRUE_;
}

WC_API BOOL CreateDirectoryW(PCWSTR lpPathName, SECURITY_ATTRIBUTES *lpSecurityAttributes) {
    if (!lpPathName) return fail(ERROR_INVALID_PARAMETER);
    BOOL done;
    if (!lpSecurityAttributes && lease_mkdir(lpPathName, &done)) return done;
    int ascii = 1;
    for (PCWSTR c = lpPathName; *c && ascii; c++) ascii = *c >= 0x20 && *c < 0x7F;
    unsigned wants = !lpSecurityAttributes && ascii && wc_wcslen(lpPathName) < LEASE_PATH_MAX && lease_room();
    wc_reply r;
    int ok = wc_request(&r, "CreateDirectoryW", "su", lpPathName, wants) == 0;
    if (!answered(&r, ok)) return FALSE_;
    uint64_t lease_id = (uint64_t)rd_int(&r);
    if (lease_id) lease_install(lpPathName, &r, lease_id);
    wc_reply_free(&r);
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL RemoveDirectoryW(PCWSTR lpPathName) {
    if (!lpPathName) return fail(ERROR_INVALID_PARAMETER);
    return simple("RemoveDirectoryW", "s", lpPathName);
}

WC_API BOOL DeleteFileW(PCWSTR lpFileName) {
    if (!lpFileName) return fail(ERROR_INVALID_PARAMETER);
    return simple("DeleteFileW", "s", lpFileName);
}

WC_API BOOL CreateHardLinkW(PCWSTR lpFileName, PCWSTR lpExistingFileName, SECURITY_ATTRIBUTES *lpSecurityAttributes) {
    (void)lpSecurityAttributes;
    if (!lpFileName || !lpExistingFileName) return fail(ERROR_INVALID_PARAMETER);
    return simple("CreateHardLinkW", "ss", lpFileName, lpExistingFileName);
}

WC_API BOOLEAN CreateSymbolicLinkW(PCWSTR lpSymlinkFileName, PCWSTR lpTargetFileName, DWORD dwFlags) {
    if (!lpSymlinkFileName || !lpTargetFileName) return (BOOLEAN)fail(ERROR_INVALID_PARAMETER);
    return (BOOLEAN)simple("CreateSymbolicLinkW", "ssu", lpSymlinkFileName, lpTargetFileName, (unsigned)dwFlags);
}

WC_API BOOL MoveFileExW(PCWSTR lpExistingFileName, PCWSTR lpNewFileName, DWORD dwFlags) {
    if (!lpExistingFileName || !lpNewFileName) return fail(ERROR_INVALID_PARAMETER);
    return simple("MoveFileExW", "ssu", lpExistingFileName, lpNewFileName, (unsigned)dwFlags);
}

WC_API BOOL SetFileAttributesW(PCWSTR lpFileName, DWORD dwFileAttributes) {
    if (!lpFileName) return fail(ERROR_INVALID_PARAMETER);
    return simple("SetFileAttributesW", "su", lpFileName, (unsigned)dwFileAttributes);
}

static int attributes_of(PCWSTR path, int64_t out[5]) {
    wc_reply r;
    int ok = wc_request(&r, "GetFileAttributesW", "s", path) == 0;
    if (!answered(&r, ok)) return -1;
    for (int i = 0; i < 5; i++) out[i] = rd_int(&r);
    wc_reply_free(&r);
    return 0;
}

WC_API DWORD GetFileAttributesW(PCWSTR lpFileName) {
    if (!lpFileName) {
        t_last_error = ERROR_INVALID_PARAMETER;
        return INVALID_FILE_ATTRIBUTES;
    }
    int64_t v[5];
    if (attributes_of(lpFileName, v)) return INVALID_FILE_ATTRIBUTES;
    return (DWORD)v[0];
}

static void filetime(FILETIME *ft, int64_t t) {
    ft->dwLowDateTime = (DWORD)t;
    ft->dwHighDateTime = (DWORD)((uint64_t)t >> 32);
}

WC_API BOOL GetFileAttributesExW(PCWSTR lpFileName, int fInfoLevelId, void *lpFileInformation) {
    if (!lpFileName || !lpFileInformation || fInfoLevelId != 0) return fail(ERROR_INVALID_PARAMETER);
    int64_t v[5];
    if (attributes_of(lpFileName, v)) return FALSE_;
    WIN32_FILE_ATTRIBUTE_DATA *d = lpFileInformation;
    d->dwFileAttributes = (DWORD)v[0];
    filetime(&d->ftCreationTime, v[1]);
    filetime(&d->ftLastAccessTime, v[2]);
    filetime(&d->ftLastWriteTime, v[3]);
    d->nFileSizeHigh = (DWORD)((uint64_t)v[4] >> 32);
    d->nFileSizeLow = (DWORD)v[4];
    return TRUE_;
}

WC_API BOOL GetDiskFreeSpaceExW(PCWSTR lpDirectoryName, uint64_t *lpFreeBytesAvailableToCaller,
                                uint64_t *lpTotalNumberOfBytes, uint64_t *lpTotalNumberOfFreeBytes) {
    if (!lpDirectoryName) return fail(ERROR_INVALID_PARAMETER);
    wc_reply r;
    int ok = wc_request(&r, "GetDiskFreeSpaceExW", "s", lpDirectoryName) == 0;
    if (!answered(&r, ok)) return FALSE_;
    uint64_t v[3];
    for (int i = 0; i < 3; i++) v[i] = (uint64_t)rd_int(&r);
    wc_reply_free(&r);
    if (lpFreeBytesAvailableToCaller) *lpFreeBytesAvailableToCaller = v[0];
    if (lpTotalNumberOfBytes) *lpTotalNumberOfBytes = v[1];
    if (lpTotalNumberOfFreeBytes) *lpTotalNumberOfFreeBytes = v[2];
    return TRUE_;
}

/* ---- searches ----------------------------------------------------------------------------------- */

/* One packed entry: attributes u32, creation, access, write, size (i64 each), tag u32, name length u16, name. */
static int next_entry(k32_obj *o, WIN32_FIND_DATAW *d) {
    if (o->next_entry >= o->count) return 0;
    const uint8_t *p = o->cursor;
    DWORD attributes = rd32(p), tag;
    int64_t t[3], size;
    memcpy(t, p + 4, 24);
    memcpy(&size, p + 28, 8);
    tag = rd32(p + 36);
    uint16_t n;
    memcpy(&n, p + 40, 2);
    memset(d, 0, sizeof *d);
    d->dwFileAttributes = attributes;
    filetime(&d->ftCreationTime, t[0]);
    filetime(&d->ftLastAccessTime, t[1]);
    filetime(&d->ftLastWriteTime, t[2]);
    d->nFileSizeHigh = (DWORD)((uint64_t)size >> 32);
    d->nFileSizeLow = (DWORD)size;
    d->dwReserved0 = attributes & FILE_ATTRIBUTE_REPARSE_POINT ? tag : 0;
    uint16_t copy = n < 259 ? n : 259;
    memcpy(d->cFileName, p + 42, copy * 2u);
    o->cursor = p + 42 + n * 2u;
    o->next_entry++;
    return 1;
}

WC_API HANDLE FindFirstFileExW(PCWSTR lpFileName, int fInfoLevelId, void *lpFindFileData, int fSearchOp,
                               void *lpSearchFilter, DWORD dwAdditionalFlags) {
    (void)dwAdditionalFlags;
    if (!lpFileName || !lpFindFileData || lpSearchFilter || (fInfoLevelId != 0 && fInfoLevelId != 1) ||
        (fSearchOp != 0 && fSearchOp != 1)) {
        t_last_error = ERROR_INVALID_PARAMETER;
        return INVALID_HANDLE;
    }
    uint8_t *local = NULL;
    uint32_t local_len = 0, local_count = 0;
    k32_obj *o;
    if (lease_find(lpFileName, fSearchOp == 1, &local, &local_len, &local_count)) {
        o = calloc(1, sizeof *o);
        if (!o) {
            free(local);
            t_last_error = ERROR_NOT_ENOUGH_MEMORY;
            return INVALID_HANDLE;
        }
        o->count = local_count;
        o->entries = local;
        o->entries_len = local_len;
    } else {
        wc_reply r;
        int ok = wc_request(&r, "FindFirstFileExW", "su", lpFileName, (unsigned)(fSearchOp == 1)) == 0;
        if (!answered(&r, ok)) return INVALID_HANDLE;
        o = calloc(1, sizeof *o);
        const uint8_t *blob;
        uint32_t n;
        if (o) o->count = (uint32_t)rd_int(&r);
        if (!o || wc_reply_bytes(&r, &blob, &n) || !(o->entries = malloc(n ? n : 1))) {
            free(o);
            wc_reply_free(&r);
            t_last_error = ERROR_NOT_ENOUGH_MEMORY;
            return INVALID_HANDLE;
        }
        memcpy(o->entries, blob, n);
        o->entries_len = n;
        wc_reply_free(&r);
    }
    o->cursor = o->entries;
    o->fd = -1;
    o->kind = OBJ_FIND;
    pthread_mutex_lock(&objs_lock);
    o->id = next_find_id++;
    pthread_mutex_unlock(&objs_lock);
    if (!next_entry(o, lpFindFileData)) {
        free_obj(o);
        t_last_error = 2; /* ERROR_FILE_NOT_FOUND */
        return INVALID_HANDLE;
    }
    add_obj(o);
    t_last_error = 0;
    return handle_of(o);
}

WC_API BOOL FindNextFileW(HANDLE hFindFile, WIN32_FIND_DATAW *lpFindFileData) {
    k32_obj *o = find_obj(hFindFile, OBJ_FIND, 0);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    if (!lpFindFileData) return fail(ERROR_INVALID_PARAMETER);
    if (!next_entry(o, lpFindFileData)) return fail(ERROR_NO_MORE_FILES);
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL FindClose(HANDLE hFindFile) {
    k32_obj *o = find_obj(hFindFile, OBJ_FIND, 1);
    if (!o) return fail(ERROR_INVALID_HANDLE);
    free_obj(o);
    t_last_error = 0;
    return TRUE_;
}

/* ---- the console ------------------------------------------------------------------------------------
 * GetStdHandle gives this process's standard handles; on a terminal they have a console mode, kept
 * in the terminal's settings: ENABLE_PROCESSED_INPUT (1) is ISIG, ENABLE_LINE_INPUT (2) ICANON,
 * ENABLE_ECHO_INPUT (4) ECHO, ENABLE_VIRTUAL_TERMINAL_INPUT (0x200) input passed as typed (no
 * ICRNL, IXON); on output ENABLE_PROCESSED_OUTPUT (1) is OPOST and virtual terminal processing (4)
 * is always on. Setting back the mode first reported restores the settings first seen byte for
 * byte, as a Windows console keeps whatever else it had. Anything not a terminal has no console
 * mode: ERROR_INVALID_HANDLE, as Windows says for a redirected handle. */

#define STD_TAG 0xCu
static struct termios console_first[3];
static DWORD console_first_mode[3];
static int console_seen[3];
static pthread_mutex_t console_lock = PTHREAD_MUTEX_INITIALIZER;

static int console_fd(HANDLE h) {
    uintptr_t v = (uintptr_t)h;
    if ((v & 0xF) != STD_TAG || (v >> 4) > 2) return -1;
    return (int)(v >> 4);
}

static DWORD mode_of(int fd, const struct termios *t) {
    if (fd == 0)
        return ((t->c_lflag & ISIG) ? 0x1u : 0) | ((t->c_lflag & ICANON) ? 0x2u : 0) | ((t->c_lflag & ECHO) ? 0x4u : 0)
               | (!(t->c_iflag & (ICRNL | IXON)) ? 0x200u : 0);
    return ((t->c_oflag & OPOST) ? 0x1u : 0) | 0x4u;
}

WC_API HANDLE GetStdHandle(DWORD nStdHandle) {
    int fd = nStdHandle == (DWORD)-10 ? 0 : nStdHandle == (DWORD)-11 ? 1 : nStdHandle == (DWORD)-12 ? 2 : -1;
    if (fd < 0) { t_last_error = ERROR_INVALID_HANDLE; return INVALID_HANDLE; }
    t_last_error = 0;
    return (HANDLE)(uintptr_t)(((uintptr_t)fd << 4) | STD_TAG);
}

WC_API BOOL GetConsoleMode(HANDLE hConsoleHandle, DWORD *lpMode) {
    int fd = console_fd(hConsoleHandle);
    struct termios t;
    if (fd < 0 || !lpMode) return fail(ERROR_INVALID_HANDLE);
    if (tcgetattr(fd, &t) != 0) return fail(ERROR_INVALID_HANDLE);
    *lpMode = mode_of(fd, &t);
    pthread_mutex_lock(&console_lock);
    if (!console_seen[fd]) { console_first[fd] = t; console_first_mode[fd] = *lpMode; console_seen[fd] = 1; }
    pthread_mutex_unlock(&console_lock);
    t_last_error = 0;
    return TRUE_;
}

WC_API BOOL SetConsoleMode(HANDLE hConsoleHandle, DWORD dwMode) {
    int fd = console_fd(hConsoleHandle);
    struct termios t;
    if (fd < 0 || tcgetattr(fd, &t) != 0) return fail(ERROR_INVALID_HANDLE);
    pthread_mutex_lock(&console_lock);
    int first = console_seen[fd] && console_first_mode[fd] == dwMode;
    if (first) t = console_first[fd];
    pthread_mutex_unlock(&console_lock);
    if (!first && fd == 0) {
        t.c_lflag = (dwMode & 0x1u) ? (t.c_lflag | ISIG) : (t.c_lflag & ~(tcflag_t)ISIG);
        t.c_lflag = (dwMode & 0x2u) ? (t.c_lflag | ICANON) : (t.c_lflag & ~(tcflag_t)ICANON);
        t.c_lflag = (dwMode & 0x4u) ? (t.c_lflag | ECHO) : (t.c_lflag & ~(tcflag_t)ECHO);
        if (dwMode & 0x200u) t.c_iflag &= ~(tcflag_t)(ICRNL | IXON);
        else t.c_iflag |= ICRNL | IXON;
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
    } else if (!first) {
        t.c_oflag = (dwMode & 0x1u) ? (t.c_oflag | OPOST) : (t.c_oflag & ~(tcflag_t)OPOST);
    }
    if (tcsetattr(fd, TCSADRAIN, &t) != 0) return fail(ERROR_INVALID_HANDLE);
    t_last_error = 0;
    return TRUE_;
}

/* ---- processes and the system directory ---------------------------------------------------------- */

WC_API HANDLE GetCurrentProcess(void) { return INVALID_HANDLE; }

WC_API DWORD GetCurrentProcessId(void) { return (DWORD)getpid(); }

WC_API HANDLE OpenProcess(DWORD dwDesiredAccess, BOOL bInheritHandle, DWORD dwProcessId) {
    wc_reply r;
    int ok = wc_request(&r, "OpenProcess", "uuu", (unsigned)dwDesiredAccess, (unsigned)(bInheritHandle != 0),
                        (unsigned)dwProcessId) == 0;
    if (!answered(&r, ok)) return NULL;
    uint64_t id = (uint64_t)rd_int(&r);
    wc_reply_free(&r);
    return wc_handle_value(id);
}

WC_API BOOL GetExitCodeProcess(HANDLE hProcess, DWORD *lpExitCode) {
    if (!lpExitCode) return fail(ERROR_INVALID_PARAMETER);
    if (hProcess == INVALID_HANDLE) {
        *lpExitCode = 259; /* STILL_ACTIVE */
        t_last_error = 0;
        return TRUE_;
    }
    uint64_t id = wc_handle_id(hProcess);
    if (!id) return fail(ERROR_INVALID_HANDLE);
    wc_reply r;
    int ok = wc_request(&r, "GetExitCodeProcess", "q", id) == 0;
    if (!answered(&r, ok)) return FALSE_;
    *lpExitCode = (DWORD)rd_int(&r);
    wc_reply_free(&r);
    return TRUE_;
}

/* The system directory is the folder this library was loaded from, as System32 holds kernel32. */
WC_API UINT GetSystemDirectoryW(PWSTR lpBuffer, UINT uSize) {
    Dl_info info;
    if (!dladdr((void *)&GetSystemDirectoryW, &info) || !info.dli_fname) return (UINT)fail(ERROR_GEN_FAILURE);
    char self[4096];
    snprintf(self, sizeof self, "%s", info.dli_fname);
    const unsigned char *s = (const unsigned char *)dirname(self);
    WCHAR out[4096];
    UINT n = 0;
    while (*s && n < 4090) { /* UTF-8 -> UTF-16 */
        uint32_t cp = *s++;
        int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
        if (extra) cp &= 0x3F >> extra;
        while (extra-- > 0 && *s) cp = (cp << 6) | (*s++ & 0x3F);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out[n++] = (WCHAR)(0xD800 + (cp >> 10));
            out[n++] = (WCHAR)(0xDC00 + (cp & 0x3FF));
        } else {
            out[n++] = (WCHAR)cp;
        }
    }
    if (!lpBuffer || uSize <= n) return n + 1;
    memcpy(lpBuffer, out, n * 2u);
    lpBuffer[n] = 0;
    t_last_error = 0;
    return n;
}
