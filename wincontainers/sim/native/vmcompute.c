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
WC_API HRESULT NameToGuid(PCWSTR name, GUID *guid) {
    if (!name || !guid) return E_POINTER;
    return wc_call("NameToGuid", "sG", name, guid);
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
