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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static void free_obj(k32_obj *o) {
    if (o->fd >= 0) close(o->fd);
    free(o->security);
    free(o->eas);
    free(o->reparse);
    free(o->streams);
    free(o->entries);
    free(o);
}

static k32_obj *file_of(HANDLE h) { return find_obj(h, OBJ_FILE, 0); }

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
        wc_oneway("CloseHandle", "qbubbbb", (uint64_t)o->id, o->basic_set ? (void *)&b : NULL,
                  o->basic_set ? (unsigned)sizeof b : 0u, (unsigned)o->wrote, o->security, o->security_len, o->eas, o->eas_len,
                  o->reparse, o->reparse_len, o->streams, o->streams_len);
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
    struct stat st;
    if (fstat(o->fd, &st)) return fail(errno_code(errno));
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
    (void)lpSecurityAttributes;
    if (!lpPathName) return fail(ERROR_INVALID_PARAMETER);
    return simple("CreateDirectoryW", "s", lpPathName);
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
    wc_reply r;
    int ok = wc_request(&r, "FindFirstFileExW", "su", lpFileName, (unsigned)(fSearchOp == 1)) == 0;
    if (!answered(&r, ok)) return INVALID_HANDLE;
    k32_obj *o = calloc(1, sizeof *o);
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
    o->cursor = o->entries;
    o->fd = -1;
    o->kind = OBJ_FIND;
    wc_reply_free(&r);
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
