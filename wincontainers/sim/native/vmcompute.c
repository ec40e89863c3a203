/* Simulated vmcompute.dll: the gen1 string-id API (TP3), the gen2 handle + callback API
 * (Server 2016 and later), HNSCall and the layer API. Which of these a profile exports is
 * decided by the linker version script the builder writes from wincontainers/sim/profiles.py.
 */
#include "wcsim.h"

#include <string.h>

/* ---- gen1: string ids, blocking calls ---------------------------------------------------- */

WC_API HRESULT CreateComputeSystem(PCWSTR id, PCWSTR configuration) {
    return wc_call("CreateComputeSystem", "ss", id, configuration);
}
WC_API HRESULT StartComputeSystem(PCWSTR id) { return wc_call("StartComputeSystem", "s", id); }
WC_API HRESULT ShutdownComputeSystem(PCWSTR id, DWORD timeout) {
    return wc_call("ShutdownComputeSystem", "su", id, timeout);
}
WC_API HRESULT TerminateComputeSystem(PCWSTR id) { return wc_call("TerminateComputeSystem", "s", id); }
WC_API HRESULT CreateProcessWithStdHandlesInComputeSystem(PCWSTR id, PCWSTR paramsJson, DWORD *processId,
                                                          HANDLE *stdIn, HANDLE *stdOut, HANDLE *stdErr) {
    return wc_call("CreateProcessWithStdHandlesInComputeSystem", "ssIFFF", id, paramsJson, processId, stdIn, stdOut,
                   stdErr);
}
WC_API HRESULT WaitForProcessInComputeSystem(PCWSTR id, DWORD processId, DWORD timeout, DWORD *exitCode) {
    return wc_call("WaitForProcessInComputeSystem", "suuI", id, processId, timeout, exitCode);
}
WC_API HRESULT TerminateProcessInComputeSystem(PCWSTR id, DWORD processId) {
    return wc_call("TerminateProcessInComputeSystem", "su", id, processId);
}
WC_API HRESULT ResizeConsoleInComputeSystem(PCWSTR id, DWORD processId, UINT32 height, UINT32 width, DWORD flags) {
    return wc_call("ResizeConsoleInComputeSystem", "suuuu", id, processId, height & 0xFFFF, width & 0xFFFF, flags);
}

/* ---- layer API (every generation that uses vmcompute layers) ---------------------------- */

WC_API HRESULT LayerExists(DriverInfo *info, PCWSTR id, BOOL *exists) {
    if (!exists) return E_POINTER;
    return wc_call("LayerExists", "dsB", info, id, exists);
}
WC_API HRESULT CreateLayer(DriverInfo *info, PCWSTR id, PCWSTR parentId) {
    return wc_call("CreateLayer", "dss", info, id, parentId);
}
WC_API HRESULT DestroyLayer(DriverInfo *info, PCWSTR id) { return wc_call("DestroyLayer", "ds", info, id); }
WC_API HRESULT ActivateLayer(DriverInfo *info, PCWSTR id) { return wc_call("ActivateLayer", "ds", info, id); }
WC_API HRESULT DeactivateLayer(DriverInfo *info, PCWSTR id) { return wc_call("DeactivateLayer", "ds", info, id); }
WC_API HRESULT CreateSandboxLayer(DriverInfo *info, PCWSTR id, PCWSTR parentId, WC_LAYER_DESCRIPTOR *layers,
                                  DWORD layerCount) {
    return wc_call("CreateSandboxLayer", "dssL", info, id, parentId, layers, layerCount);
}
WC_API HRESULT PrepareLayer(DriverInfo *info, PCWSTR id, WC_LAYER_DESCRIPTOR *layers, DWORD layerCount) {
    return wc_call("PrepareLayer", "dsL", info, id, layers, layerCount);
}
WC_API HRESULT UnprepareLayer(DriverInfo *info, PCWSTR id) { return wc_call("UnprepareLayer", "ds", info, id); }
WC_API HRESULT ExportLayer(DriverInfo *info, PCWSTR id, PCWSTR exportFolderPath, WC_LAYER_DESCRIPTOR *layers,
                           DWORD layerCount) {
    return wc_call("ExportLayer", "dssL", info, id, exportFolderPath, layers, layerCount);
}
WC_API HRESULT ImportLayer(DriverInfo *info, PCWSTR id, PCWSTR importFolderPath, WC_LAYER_DESCRIPTOR *layers,
                           DWORD layerCount) {
    return wc_call("ImportLayer", "dssL", info, id, importFolderPath, layers, layerCount);
}
WC_API HRESULT CopyLayer(DriverInfo *info, PCWSTR srcId, PCWSTR dstId, WC_LAYER_DESCRIPTOR *layers, DWORD layerCount) {
    return wc_call("CopyLayer", "dssL", info, srcId, dstId, layers, layerCount);
}
WC_API HRESULT GetBaseImages(PWSTR *imageData) {
    if (!imageData) return E_POINTER;
    return wc_call("GetBaseImages", "S", imageData);
}
/* NameToGuid is a pure function of the name: it needs no service, so it is computed here
 * rather than in the daemon (and is the cheapest call a binding can make, which
 * bench/bench_call_overhead.py uses to measure what the binding adds). The value is the
 * simulator's own version-5 GUID of the UTF-16BE name (wincontainers/sim/storage.py,
 * name_to_guid: the same namespace, so the daemon and the DLL agree). */

typedef struct {
    uint32_t h[5];
    uint64_t length;
    uint8_t block[64];
    size_t fill;
} sha1_state;

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_compress(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
        else { f = b ^ c ^ d; k = 0xCA62C1D6; }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d; d = c; c = rol32(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1_byte(sha1_state *s, uint8_t byte) {
    s->block[s->fill++] = byte;
    s->length += 8;
    if (s->fill == 64) {
        sha1_compress(s->h, s->block);
        s->fill = 0;
    }
}

static void sha1_finish(sha1_state *s, uint8_t out[20]) {
    uint64_t bits = s->length;
    sha1_byte(s, 0x80);
    while (s->fill != 56) sha1_byte(s, 0);
    for (int i = 7; i >= 0; i--) s->block[s->fill++] = (uint8_t)(bits >> (8 * i));
    sha1_compress(s->h, s->block);
    for (int i = 0; i < 20; i++) out[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* uuid.UUID("6f2b4c1e-3d5a-5b7e-9c10-8a2b3c4d5e6f").bytes */
static const uint8_t NAME_NAMESPACE[16] = {0x6f, 0x2b, 0x4c, 0x1e, 0x3d, 0x5a, 0x5b, 0x7e,
                                           0x9c, 0x10, 0x8a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f};

WC_API HRESULT NameToGuid(PCWSTR name, GUID *guid) {
    if (!name || !guid) return E_POINTER;
    sha1_state s = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    for (int i = 0; i < 16; i++) sha1_byte(&s, NAME_NAMESPACE[i]);
    for (PCWSTR c = name; *c; c++) {
        sha1_byte(&s, (uint8_t)(*c >> 8));
        sha1_byte(&s, (uint8_t)*c);
    }
    uint8_t d[20];
    sha1_finish(&s, d);
    d[6] = (uint8_t)((d[6] & 0x0F) | 0x50); /* version 5 */
    d[8] = (uint8_t)((d[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    guid->Data1 = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
    guid->Data2 = (uint16_t)(d[4] << 8 | d[5]);
    guid->Data3 = (uint16_t)(d[6] << 8 | d[7]);
    memcpy(guid->Data4, d + 8, 8);
    return S_OK;
}
WC_API HRESULT ExpandSandboxSize(DriverInfo *info, PCWSTR id, UINT64 size) {
    return wc_call("ExpandSandboxSize", "dsq", info, id, size);
}
WC_API HRESULT ProcessBaseImage(PCWSTR path) { return wc_call("ProcessBaseImage", "s", path); }
WC_API HRESULT ProcessUtilityImage(PCWSTR path) { return wc_call("ProcessUtilityImage", "s", path); }
WC_API HRESULT GrantVmAccess(PCWSTR vmId, PCWSTR filePath) { return wc_call("GrantVmAccess", "ss", vmId, filePath); }

/* Two-call protocol: buffer == NULL asks for the length (in WCHARs, terminator included). */
WC_API HRESULT GetLayerMountPath(DriverInfo *info, PCWSTR id, UINT64 *length, PWSTR buffer) {
    if (!length) return E_POINTER;
    PWSTR path = NULL;
    HRESULT hr = wc_call("GetLayerMountPath", "dsS", info, id, &path);
    if (hr < 0) return hr;
    size_t n = path ? wc_wcslen(path) : 0;
    if (!buffer) {
        *length = n + 1;
    } else if (*length < n + 1) {
        *length = n + 1;
        hr = ERROR_INSUFFICIENT_BUFFER_HR;
    } else {
        if (n) memcpy(buffer, path, n * 2);
        buffer[n] = 0;
        *length = n + 1;
    }
    wc_free_wstr(path);
    return hr;
}

/* ---- gen2: handles, pending operations, notification callbacks -------------------------- */

WC_API HRESULT HcsEnumerateComputeSystems(PCWSTR query, PWSTR *computeSystems, PWSTR *result) {
    return wc_call("HcsEnumerateComputeSystems", "sSS", query, computeSystems, result);
}
WC_API HRESULT HcsCreateComputeSystem(PCWSTR id, PCWSTR configuration, HANDLE identity, HCS_SYSTEM *computeSystem,
                                      PWSTR *result) {
    if (!computeSystem) return E_POINTER;
    return wc_call("HcsCreateComputeSystem", "ssxHS", id, configuration, identity, computeSystem, result);
}
WC_API HRESULT HcsOpenComputeSystem(PCWSTR id, HCS_SYSTEM *computeSystem, PWSTR *result) {
    if (!computeSystem) return E_POINTER;
    return wc_call("HcsOpenComputeSystem", "sHS", id, computeSystem, result);
}
WC_API HRESULT HcsCloseComputeSystem(HCS_SYSTEM computeSystem) {
    HRESULT hr = wc_call("HcsCloseComputeSystem", "h", computeSystem);
    if (hr >= 0) wc_forget_handle(wc_handle_id(computeSystem));
    return hr;
}
#define SYSTEM_OP(name)                                                                                   \
    WC_API HRESULT name(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result) {                        \
        return wc_call(#name, "hsS", computeSystem, options, result);                                     \
    }
SYSTEM_OP(HcsStartComputeSystem)
SYSTEM_OP(HcsShutdownComputeSystem)
SYSTEM_OP(HcsTerminateComputeSystem)
SYSTEM_OP(HcsPauseComputeSystem)
SYSTEM_OP(HcsResumeComputeSystem)
SYSTEM_OP(HcsSaveComputeSystem)
WC_API HRESULT HcsGetComputeSystemProperties(HCS_SYSTEM computeSystem, PCWSTR propertyQuery, PWSTR *properties,
                                             PWSTR *result) {
    return wc_call("HcsGetComputeSystemProperties", "hsSS", computeSystem, propertyQuery, properties, result);
}
WC_API HRESULT HcsModifyComputeSystem(HCS_SYSTEM computeSystem, PCWSTR configuration, PWSTR *result) {
    return wc_call("HcsModifyComputeSystem", "hsS", computeSystem, configuration, result);
}

static HRESULT register_callback(const char *fn, void *handle, HCS_NOTIFICATION_CALLBACK callback, void *context,
                                 HCS_CALLBACK *callbackHandle) {
    if (!callback || !callbackHandle) return E_POINTER;
    UINT64 reg = 0;
    HRESULT hr = wc_call(fn, "hQ", handle, &reg);
    if (hr < 0) return hr;
    wc_register_notification(wc_handle_id(handle), callback, context, reg);
    *callbackHandle = wc_handle_value(reg);
    return hr;
}
static HRESULT unregister_callback(const char *fn, HCS_CALLBACK callbackHandle) {
    HRESULT hr = wc_call(fn, "h", callbackHandle);
    if (hr >= 0) wc_unregister_notification(wc_handle_id(callbackHandle));
    return hr;
}
WC_API HRESULT HcsRegisterComputeSystemCallback(HCS_SYSTEM computeSystem, HCS_NOTIFICATION_CALLBACK callback,
                                                void *context, HCS_CALLBACK *callbackHandle) {
    return register_callback("HcsRegisterComputeSystemCallback", computeSystem, callback, context, callbackHandle);
}
WC_API HRESULT HcsUnregisterComputeSystemCallback(HCS_CALLBACK callbackHandle) {
    return unregister_callback("HcsUnregisterComputeSystemCallback", callbackHandle);
}
WC_API HRESULT HcsCreateProcess(HCS_SYSTEM computeSystem, PCWSTR processParameters,
                                HCS_PROCESS_INFORMATION *processInformation, HCS_PROCESS *process, PWSTR *result) {
    if (!process || !processInformation) return E_POINTER;
    return wc_call("HcsCreateProcess", "hsPHS", computeSystem, processParameters, processInformation, process, result);
}
WC_API HRESULT HcsOpenProcess(HCS_SYSTEM computeSystem, DWORD processId, HCS_PROCESS *process, PWSTR *result) {
    if (!process) return E_POINTER;
    return wc_call("HcsOpenProcess", "huHS", computeSystem, processId, process, result);
}
WC_API HRESULT HcsCloseProcess(HCS_PROCESS process) {
    HRESULT hr = wc_call("HcsCloseProcess", "h", process);
    if (hr >= 0) wc_forget_handle(wc_handle_id(process));
    return hr;
}
WC_API HRESULT HcsTerminateProcess(HCS_PROCESS process, PWSTR *result) {
    return wc_call("HcsTerminateProcess", "hS", process, result);
}
WC_API HRESULT HcsSignalProcess(HCS_PROCESS process, PCWSTR options, PWSTR *result) {
    return wc_call("HcsSignalProcess", "hsS", process, options, result);
}
WC_API HRESULT HcsGetProcessInfo(HCS_PROCESS process, HCS_PROCESS_INFORMATION *processInformation, PWSTR *result) {
    if (!processInformation) return E_POINTER;
    return wc_call("HcsGetProcessInfo", "hPS", process, processInformation, result);
}
WC_API HRESULT HcsGetProcessProperties(HCS_PROCESS process, PWSTR *processProperties, PWSTR *result) {
    return wc_call("HcsGetProcessProperties", "hSS", process, processProperties, result);
}
WC_API HRESULT HcsModifyProcess(HCS_PROCESS process, PCWSTR settings, PWSTR *result) {
    return wc_call("HcsModifyProcess", "hsS", process, settings, result);
}
WC_API HRESULT HcsRegisterProcessCallback(HCS_PROCESS process, HCS_NOTIFICATION_CALLBACK callback, void *context,
                                          HCS_CALLBACK *callbackHandle) {
    return register_callback("HcsRegisterProcessCallback", process, callback, context, callbackHandle);
}
WC_API HRESULT HcsUnregisterProcessCallback(HCS_CALLBACK callbackHandle) {
    return unregister_callback("HcsUnregisterProcessCallback", callbackHandle);
}
WC_API HRESULT HcsGetServiceProperties(PCWSTR propertyQuery, PWSTR *properties, PWSTR *result) {
    return wc_call("HcsGetServiceProperties", "sSS", propertyQuery, properties, result);
}
WC_API HRESULT HcsModifyServiceSettings(PCWSTR settings, PWSTR *result) {
    return wc_call("HcsModifyServiceSettings", "sS", settings, result);
}
WC_API HRESULT HNSCall(PCWSTR method, PCWSTR path, PCWSTR request, PWSTR *response) {
    return wc_call("HNSCall", "sssS", method, path, request, response);
}
