/* wincontainers simulated host: the client side of the fake HCS DLLs.
 *
 * Each simulated DLL (vmcompute.dll, computecore.dll, ...) is a shared library built from
 * client.c plus one DLL source file. The exported functions have the exact Windows
 * signatures; they marshal their arguments into a small tagged binary format and forward
 * them over a Unix socket to the simulator daemon (wincontainers.sim.daemon), which plays
 * the vmcompute service. Notifications, events and operation completions come back on the
 * same socket and are delivered on a native thread of this library, as HCS does.
 *
 * Wire format (little endian), shared with wincontainers/sim/wire.py:
 *   message  := u32 length, payload[length]
 *   payload  := u8 type, ...         type: 'H' hello, 'Q' request, 'O' one-way, 'R' response, 'E' event
 *   value    := 'N'                  null
 *             | 'i' i64              integer
 *             | 's' u32 n, n bytes   UTF-16LE string (no terminator)
 *             | 'b' u32 n, n bytes   raw bytes
 *             | 'g' 16 bytes         GUID in Windows memory layout
 *             | 'l' u32 n, n values  list
 *   hello    := 'H' value(dll) value(profile) value(pid)
 *   request  := 'Q'|'O' u64 id, u16 n, name[n] (ASCII), u16 count, value*
 *   response := 'R' u64 id, i64 hresult, u16 count, value*      (+ file descriptors, SCM_RIGHTS)
 *   event    := 'E' u8 kind, u16 count, value*                  (+ file descriptors)
 */
#ifndef WCSIM_H
#define WCSIM_H

#include <stdint.h>
#include <stddef.h>

typedef int32_t HRESULT;
typedef uint32_t DWORD;
typedef int BOOL;
typedef void *HANDLE;
typedef uint16_t WCHAR;
typedef const WCHAR *PCWSTR;
typedef WCHAR *PWSTR;
typedef uint32_t UINT32;
typedef uint64_t UINT64;

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t Data4[8];
} GUID;

typedef void *HCS_SYSTEM;
typedef void *HCS_PROCESS;
typedef void *HCS_OPERATION;
typedef void *HCS_CALLBACK;

typedef struct _DriverInfo {
    int Flavour;
    PCWSTR HomeDir;
} DriverInfo;

typedef struct _WC_LAYER_DESCRIPTOR {
    GUID LayerId;
    UINT32 Flags;
    PCWSTR Path;
} WC_LAYER_DESCRIPTOR;

typedef struct _HCS_PROCESS_INFORMATION {
    DWORD ProcessId;
    DWORD Reserved;
    HANDLE StdInput;
    HANDLE StdOutput;
    HANDLE StdError;
} HCS_PROCESS_INFORMATION;

typedef struct _HCS_EVENT {
    UINT32 Type;
    PCWSTR EventData;
    HCS_OPERATION Operation;
} HCS_EVENT;

typedef void (*HCS_NOTIFICATION_CALLBACK)(DWORD notificationType, void *context, HRESULT notificationStatus,
                                          PCWSTR notificationData);
typedef void (*HCS_EVENT_CALLBACK)(HCS_EVENT *event, void *context);
typedef void (*HCS_OPERATION_COMPLETION)(HCS_OPERATION operation, void *context);
typedef void (*HCN_NOTIFICATION_CALLBACK)(DWORD notificationType, void *context, HRESULT notificationStatus,
                                          PCWSTR notificationData);

#define WC_API __attribute__((visibility("default")))

#define S_OK ((HRESULT)0)
#define E_POINTER ((HRESULT)0x80004003)
#define E_HANDLE ((HRESULT)0x80070006)
#define E_INVALIDARG ((HRESULT)0x80070057)
#define E_OUTOFMEMORY ((HRESULT)0x8007000E)
#define ERROR_INSUFFICIENT_BUFFER_HR ((HRESULT)0x8007007A)
#define RPC_S_SERVER_UNAVAILABLE_HR ((HRESULT)0x800706BA)
#define HCS_E_SERVICE_DISCONNECT ((HRESULT)0x8037011E)
#define HCS_E_OPERATION_NOT_STARTED ((HRESULT)0x80370115)
#define HCS_E_OPERATION_ALREADY_STARTED ((HRESULT)0x80370116)
#define HCS_E_OPERATION_PENDING ((HRESULT)0x80370117)
#define HCS_E_OPERATION_TIMEOUT ((HRESULT)0x80370118)
#define HCS_E_CALLBACK_ALREADY_SET ((HRESULT)0x80370119)

/* Allocation tags: each string handed to the caller remembers which allocator must free it. */
#define WC_TAG_COTASKMEM 0x4D454D4B5341544FULL /* "OTASKMEM" */
#define WC_TAG_LOCALMEM 0x4D454D4C41434F4CULL  /* "LOCALMEM" */
#define WC_TAG_FREED 0x4445455246464646ULL

/* Event kinds sent by the daemon. */
#define WC_EV_NOTIFICATION 'N' /* gen2: handle id, type, status, data */
#define WC_EV_EVENT 'V'        /* gen3: handle id, type, data */
#define WC_EV_COMPLETION 'C'   /* gen3 operation: op id, hresult, result, procinfo, system id, process id */
#define WC_EV_HCN 'K'          /* HCN service notification: registration id, type, status, data */

/* ---- client core (client.c) ---------------------------------------------------------------- */

/* Marshal and forward one call. fmt letters, in parameter order:
 *   inputs : s PCWSTR, u DWORD/UINT32, q UINT64, h handle, o HCS_OPERATION, g const GUID*,
 *            d DriverInfo*, L WC_LAYER_DESCRIPTOR* + DWORD count, x opaque pointer (sent as 0/1),
 *            b buffer + DWORD size
 *   outputs: S PWSTR* (string), H handle*, I DWORD*, B BOOL*, Q UINT64*, G GUID*,
 *            P HCS_PROCESS_INFORMATION*, F HANDLE* (pipe created only when non-NULL)
 */
HRESULT wc_call(const char *fn, const char *fmt, ...);
/* Sends a call without waiting for an answer (close, operation bookkeeping). */
void wc_oneway(const char *fn, const char *fmt, ...);
HRESULT wc_call_waiting(int wait, const char *fn, const char *fmt, ...);

/* Handle values: small ids, never real pointers, so a stale handle is detected, not followed. */
void *wc_handle_value(uint64_t id);
uint64_t wc_handle_id(const void *handle);
void *wc_op_value(uint64_t id);
uint64_t wc_op_id(const void *op);

/* Strings */
size_t wc_wcslen(PCWSTR s);
PWSTR wc_alloc_wstr(const uint8_t *utf16le, size_t nbytes); /* tagged with this DLL's allocator */
void wc_free_wstr(PWSTR s);                                  /* frees one of ours, NULL is fine */

/* Callback registration (client side) */
HRESULT wc_register_notification(uint64_t handle_id, HCS_NOTIFICATION_CALLBACK cb, void *ctx, uint64_t reg_id);
void wc_unregister_notification(uint64_t reg_id);
HRESULT wc_set_event_callback(uint64_t handle_id, HCS_EVENT_CALLBACK cb, void *ctx);
HRESULT wc_register_hcn(HCN_NOTIFICATION_CALLBACK cb, void *ctx, uint64_t reg_id);
void wc_forget_handle(uint64_t handle_id);

/* gen3 operations (computecore.c uses these) */
HCS_OPERATION wc_op_create(const void *ctx, HCS_OPERATION_COMPLETION cb);
void wc_op_close(HCS_OPERATION op);
void *wc_op_get_context(HCS_OPERATION op);
HRESULT wc_op_set_context(HCS_OPERATION op, const void *ctx);
HRESULT wc_op_set_callback(HCS_OPERATION op, const void *ctx, HCS_OPERATION_COMPLETION cb);
int wc_op_type(HCS_OPERATION op);
UINT64 wc_op_id_of(HCS_OPERATION op);
HCS_SYSTEM wc_op_system(HCS_OPERATION op);
HCS_PROCESS wc_op_process(HCS_OPERATION op);
HRESULT wc_op_begin(HCS_OPERATION op, int type);
void wc_op_fail(HCS_OPERATION op, HRESULT hr);
HRESULT wc_op_result(HCS_OPERATION op, DWORD timeout_ms, int wait, HCS_PROCESS_INFORMATION *pi, PWSTR *doc);

/* A connection of the caller's own, and a one-way call on it (kernel32's lease journal). */
int wc_connect(void);
int wc_oneway_on(int fd, const char *fn, const char *fmt, ...);
uint8_t *wc_encode_oneway(size_t *n, const char *fn, const char *fmt, ...);
int wc_send_on(int fd, const uint8_t *payload, size_t n);

/* Report misuse seen by the allocator exports to the daemon (counted per client). */
void wc_report_misuse(const char *what);

/* Requests whose answer the caller reads value by value (kernel32, advapi32): the status is
 * the daemon's result (a Win32 error code there), then the call's own values and descriptors. */
typedef struct wc_reply {
    uint8_t *msg;
    uint32_t len;
    const uint8_t *cur, *end;
    int fds[16];
    int nfds, next_fd;
    int64_t status;
} wc_reply;

/* 0 when an answer came (r->status holds it), -1 when the service could not be reached. */
int wc_request(wc_reply *r, const char *fn, const char *fmt, ...);
int wc_request_on(int fd, wc_reply *r, const char *fn, const char *fmt, ...);
int wc_reply_int(wc_reply *r, int64_t *out);                        /* 0 on success */
int wc_reply_bytes(wc_reply *r, const uint8_t **p, uint32_t *n);     /* 'b' or 's'; NULL is (NULL, 0) */
int wc_reply_fd(wc_reply *r);                                        /* the next descriptor (now the caller's), -1 */
void wc_reply_free(wc_reply *r);

#endif
