/* Simulated advapi32.dll: the process token, its privileges, group membership.
 *
 * Tokens live in the daemon (wincontainers/sim/tokens.py), one per client process: an elevated
 * administrator holds SeBackupPrivilege, SeRestorePrivilege and SeSecurityPrivilege disabled
 * until AdjustTokenPrivileges enables them; a standard user does not hold them, and
 * AdjustTokenPrivileges then succeeds with ERROR_NOT_ALL_ASSIGNED, as on Windows.
 * OpenProcessToken takes GetCurrentProcess()'s pseudo handle, (HANDLE)-1 in all 64 bits; a
 * value cut to 32 bits is not a handle. The last error is kernel32's (its SetLastError).
 */
#define _GNU_SOURCE
#include "wcsim.h"

#include <ctype.h>
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct _LUID {
    DWORD LowPart;
    int32_t HighPart;
} LUID;

typedef struct _LUID_AND_ATTRIBUTES {
    LUID Luid;
    DWORD Attributes;
} LUID_AND_ATTRIBUTES;

typedef struct _TOKEN_PRIVILEGES {
    DWORD PrivilegeCount;
    LUID_AND_ATTRIBUTES Privileges[1];
} TOKEN_PRIVILEGES;

typedef struct _SID_IDENTIFIER_AUTHORITY {
    uint8_t Value[6];
} SID_IDENTIFIER_AUTHORITY;

#define ERROR_NOT_READY 21
#define ERROR_INVALID_HANDLE 6
#define ERROR_NOT_ENOUGH_MEMORY 8
#define ERROR_INVALID_PARAMETER 87
#define ERROR_INSUFFICIENT_BUFFER 122
#define ERROR_NOT_ALL_ASSIGNED 1300
#define ERROR_NO_SUCH_PRIVILEGE 1313
#define RPC_S_SERVER_UNAVAILABLE 1722

#define CURRENT_PROCESS ((HANDLE)(intptr_t)-1)

/* ---- the last error lives in kernel32 --------------------------------------------------------- */

static void (*k32_set_last_error)(DWORD);
static __thread DWORD own_last_error; /* only if kernel32.dll could not be found beside us */

__attribute__((constructor)) static void find_kernel32(void) {
    Dl_info info;
    if (!dladdr((void *)&find_kernel32, &info) || !info.dli_fname) return;
    char self[4096], path[4200];
    snprintf(self, sizeof self, "%s", info.dli_fname);
    snprintf(path, sizeof path, "%s/kernel32.dll", dirname(self));
    void *k32 = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (k32) k32_set_last_error = (void (*)(DWORD))dlsym(k32, "SetLastError");
}

static void set_error(DWORD code) {
    if (k32_set_last_error)
        k32_set_last_error(code);
    else
        own_last_error = code;
}

static BOOL fail(DWORD code) {
    set_error(code);
    return 0;
}

/* An answered request: its status becomes the last error; nonzero is a failure. */
static int answered(wc_reply *r, int ok) {
    if (!ok) {
        set_error(ERROR_NOT_READY);
        return 0;
    }
    set_error((DWORD)r->status);
    if (r->status != 0 && r->status != ERROR_NOT_ALL_ASSIGNED) {
        wc_reply_free(r);
        return 0;
    }
    return 1;
}

static int64_t rd_int(wc_reply *r) {
    int64_t v = 0;
    wc_reply_int(r, &v);
    return v;
}

/* ---- privileges ----------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    DWORD luid;
} PRIVILEGES[] = {
    {"SeCreateTokenPrivilege", 2}, {"SeAssignPrimaryTokenPrivilege", 3}, {"SeLockMemoryPrivilege", 4},
    {"SeIncreaseQuotaPrivilege", 5}, {"SeMachineAccountPrivilege", 6}, {"SeTcbPrivilege", 7},
    {"SeSecurityPrivilege", 8}, {"SeTakeOwnershipPrivilege", 9}, {"SeLoadDriverPrivilege", 10},
    {"SeSystemProfilePrivilege", 11}, {"SeSystemtimePrivilege", 12}, {"SeProfileSingleProcessPrivilege", 13},
    {"SeIncreaseBasePriorityPrivilege", 14}, {"SeCreatePagefilePrivilege", 15}, {"SeCreatePermanentPrivilege", 16},
    {"SeBackupPrivilege", 17}, {"SeRestorePrivilege", 18}, {"SeShutdownPrivilege", 19}, {"SeDebugPrivilege", 20},
    {"SeAuditPrivilege", 21}, {"SeSystemEnvironmentPrivilege", 22}, {"SeChangeNotifyPrivilege", 23},
    {"SeRemoteShutdownPrivilege", 24}, {"SeUndockPrivilege", 25}, {"SeSyncAgentPrivilege", 26},
    {"SeEnableDelegationPrivilege", 27}, {"SeManageVolumePrivilege", 28}, {"SeImpersonatePrivilege", 29},
    {"SeCreateGlobalPrivilege", 30}, {"SeTrustedCredManAccessPrivilege", 31}, {"SeRelabelPrivilege", 32},
    {"SeIncreaseWorkingSetPrivilege", 33}, {"SeTimeZonePrivilege", 34}, {"SeCreateSymbolicLinkPrivilege", 35},
    {"SeDelegateSessionUserImpersonatePrivilege", 36},
};

static int same_name(PCWSTR w, const char *a) {
    size_t i = 0;
    for (; w[i] && a[i]; i++)
        if (w[i] > 127 || tolower((int)w[i]) != tolower((unsigned char)a[i])) return 0;
    return !w[i] && !a[i];
}

WC_API BOOL LookupPrivilegeValueW(PCWSTR lpSystemName, PCWSTR lpName, LUID *lpLuid) {
    if (!lpName || !lpLuid) return fail(ERROR_INVALID_PARAMETER);
    if (lpSystemName && lpSystemName[0]) return fail(RPC_S_SERVER_UNAVAILABLE); /* other machines */
    for (size_t i = 0; i < sizeof PRIVILEGES / sizeof PRIVILEGES[0]; i++) {
        if (same_name(lpName, PRIVILEGES[i].name)) {
            lpLuid->LowPart = PRIVILEGES[i].luid;
            lpLuid->HighPart = 0;
            set_error(0);
            return 1;
        }
    }
    return fail(ERROR_NO_SUCH_PRIVILEGE);
}

/* ---- tokens ---------------------------------------------------------------------------------------- */

WC_API BOOL OpenProcessToken(HANDLE ProcessHandle, DWORD DesiredAccess, HANDLE *TokenHandle) {
    if (!TokenHandle) return fail(ERROR_INVALID_PARAMETER);
    *TokenHandle = NULL;
    uint64_t process = 0;
    if (ProcessHandle != CURRENT_PROCESS) {
        process = wc_handle_id(ProcessHandle);
        if (!process) return fail(ERROR_INVALID_HANDLE);
    }
    wc_reply r;
    int ok = wc_request(&r, "OpenProcessToken", "qu", process, (unsigned)DesiredAccess) == 0;
    if (!answered(&r, ok)) return 0;
    *TokenHandle = wc_handle_value((uint64_t)rd_int(&r));
    wc_reply_free(&r);
    return 1;
}

WC_API BOOL AdjustTokenPrivileges(HANDLE TokenHandle, BOOL DisableAllPrivileges, TOKEN_PRIVILEGES *NewState,
                                  DWORD BufferLength, TOKEN_PRIVILEGES *PreviousState, DWORD *ReturnLength) {
    uint64_t token = wc_handle_id(TokenHandle);
    if (!token) return fail(ERROR_INVALID_HANDLE);
    if (!DisableAllPrivileges && !NewState) return fail(ERROR_INVALID_PARAMETER);
    DWORD count = DisableAllPrivileges ? 0 : NewState->PrivilegeCount;
    if (count > 64) return fail(ERROR_INVALID_PARAMETER);
    uint8_t packed[64 * 12];
    for (DWORD i = 0; i < count; i++) memcpy(packed + 12 * i, &NewState->Privileges[i], 12);
    wc_reply r;
    int ok = wc_request(&r, "AdjustTokenPrivileges", "qub", token, (unsigned)(DisableAllPrivileges != 0),
                        (void *)packed, (unsigned)(12 * count)) == 0;
    if (!answered(&r, ok)) return 0;
    DWORD status = (DWORD)r.status;
    DWORD changed = (DWORD)rd_int(&r);
    const uint8_t *prev;
    uint32_t prev_len;
    wc_reply_bytes(&r, &prev, &prev_len);
    DWORD need = 4 + 12 * (changed ? changed : 1);
    if (ReturnLength) *ReturnLength = need;
    if (PreviousState) {
        if (BufferLength < need) {
            wc_reply_free(&r);
            return fail(ERROR_INSUFFICIENT_BUFFER);
        }
        PreviousState->PrivilegeCount = changed;
        if (prev_len) memcpy(PreviousState->Privileges, prev, prev_len);
    }
    wc_reply_free(&r);
    set_error(status); /* ERROR_NOT_ALL_ASSIGNED when a privilege is not held: still TRUE */
    return 1;
}

WC_API BOOL GetTokenInformation(HANDLE TokenHandle, int TokenInformationClass, void *TokenInformation,
                                DWORD TokenInformationLength, DWORD *ReturnLength) {
    uint64_t token = wc_handle_id(TokenHandle);
    if (!token) return fail(ERROR_INVALID_HANDLE);
    if (!ReturnLength) return fail(ERROR_INVALID_PARAMETER);
    wc_reply r;
    int ok = wc_request(&r, "GetTokenInformation", "qu", token, (unsigned)TokenInformationClass) == 0;
    if (!answered(&r, ok)) return 0;
    const uint8_t *blob;
    uint32_t n;
    wc_reply_bytes(&r, &blob, &n);
    *ReturnLength = n;
    if (!TokenInformation || TokenInformationLength < n) {
        wc_reply_free(&r);
        return fail(ERROR_INSUFFICIENT_BUFFER);
    }
    memcpy(TokenInformation, blob, n);
    wc_reply_free(&r);
    set_error(0);
    return 1;
}

WC_API BOOL CheckTokenMembership(HANDLE TokenHandle, void *SidToCheck, BOOL *IsMember) {
    if (!SidToCheck || !IsMember) return fail(ERROR_INVALID_PARAMETER);
    uint64_t token = 0;
    if (TokenHandle) {
        token = wc_handle_id(TokenHandle);
        if (!token) return fail(ERROR_INVALID_HANDLE);
    }
    const uint8_t *sid = SidToCheck;
    if (sid[0] != 1 || sid[1] > 15) return fail(ERROR_INVALID_PARAMETER);
    wc_reply r;
    int ok = wc_request(&r, "CheckTokenMembership", "qb", token, (void *)sid, (unsigned)(8 + 4 * sid[1])) == 0;
    if (!answered(&r, ok)) return 0;
    *IsMember = rd_int(&r) != 0;
    wc_reply_free(&r);
    set_error(0);
    return 1;
}

/* ---- SIDs --------------------------------------------------------------------------------------------- */

WC_API BOOL AllocateAndInitializeSid(SID_IDENTIFIER_AUTHORITY *pIdentifierAuthority, uint8_t nSubAuthorityCount,
                                     DWORD nSubAuthority0, DWORD nSubAuthority1, DWORD nSubAuthority2,
                                     DWORD nSubAuthority3, DWORD nSubAuthority4, DWORD nSubAuthority5,
                                     DWORD nSubAuthority6, DWORD nSubAuthority7, void **pSid) {
    if (!pIdentifierAuthority || !pSid || nSubAuthorityCount == 0 || nSubAuthorityCount > 8)
        return fail(ERROR_INVALID_PARAMETER);
    uint8_t *sid = malloc(8 + 4u * nSubAuthorityCount);
    if (!sid) return fail(ERROR_NOT_ENOUGH_MEMORY);
    DWORD subs[8] = {nSubAuthority0, nSubAuthority1, nSubAuthority2, nSubAuthority3,
                     nSubAuthority4, nSubAuthority5, nSubAuthority6, nSubAuthority7};
    sid[0] = 1;
    sid[1] = nSubAuthorityCount;
    memcpy(sid + 2, pIdentifierAuthority->Value, 6);
    memcpy(sid + 8, subs, 4u * nSubAuthorityCount);
    *pSid = sid;
    set_error(0);
    return 1;
}

WC_API void *FreeSid(void *pSid) {
    free(pSid);
    return NULL;
}
