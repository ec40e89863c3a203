/* Simulated computecore.dll: the gen3 operation API (Windows 10 1809 / Server 2019 and later).
 *
 * Every asynchronous call takes an HCS_OPERATION. The call itself returns at once; the daemon
 * completes the operation later with its result document (and, for process calls, the process
 * information and stdio handles). Strings are LocalAlloc'ed (freed with kernel32!LocalFree).
 */
#include "wcsim.h"

enum {
    OpNone = -1,
    OpEnumerate = 0,
    OpCreate = 1,
    OpStart = 2,
    OpShutdown = 3,
    OpPause = 4,
    OpResume = 5,
    OpSave = 6,
    OpTerminate = 7,
    OpModify = 8,
    OpGetProperties = 9,
    OpCreateProcess = 10,
    OpSignalProcess = 11,
    OpGetProcessInfo = 12,
    OpGetProcessProperties = 13,
    OpModifyProcess = 14,
    OpCrash = 15
};

/* Starts `operation`, forwards the call, and completes the operation locally if the call
 * could not reach the daemon (the daemon completes it otherwise, also on failure). */
#define OP_CALL(type, fn, fmt, ...)                                                                       \
    do {                                                                                                  \
        HRESULT hr_ = wc_op_begin(operation, (type));                                                     \
        if (hr_ < 0) return hr_;                                                                          \
        hr_ = wc_call(fn, fmt, __VA_ARGS__);                                                              \
        if (hr_ == (HRESULT)0x8037011E || hr_ == (HRESULT)0x800706BA) wc_op_fail(operation, hr_);        \
        return hr_;                                                                                       \
    } while (0)

/* ---- operations ------------------------------------------------------------------------- */

WC_API HCS_OPERATION HcsCreateOperation(const void *context, HCS_OPERATION_COMPLETION callback) {
    return wc_op_create(context, callback);
}
WC_API void HcsCloseOperation(HCS_OPERATION operation) { wc_op_close(operation); }
WC_API void *HcsGetOperationContext(HCS_OPERATION operation) { return wc_op_get_context(operation); }
WC_API HRESULT HcsSetOperationContext(HCS_OPERATION operation, const void *context) {
    return wc_op_set_context(operation, context);
}
WC_API HCS_SYSTEM HcsGetComputeSystemFromOperation(HCS_OPERATION operation) { return wc_op_system(operation); }
WC_API HCS_PROCESS HcsGetProcessFromOperation(HCS_OPERATION operation) { return wc_op_process(operation); }
WC_API int HcsGetOperationType(HCS_OPERATION operation) { return wc_op_type(operation); }
WC_API UINT64 HcsGetOperationId(HCS_OPERATION operation) { return wc_op_id_of(operation); }
WC_API HRESULT HcsGetOperationResult(HCS_OPERATION operation, PWSTR *resultDocument) {
    return wc_op_result(operation, 0, 0, NULL, resultDocument);
}
WC_API HRESULT HcsGetOperationResultAndProcessInfo(HCS_OPERATION operation,
                                                   HCS_PROCESS_INFORMATION *processInformation,
                                                   PWSTR *resultDocument) {
    return wc_op_result(operation, 0, 0, processInformation, resultDocument);
}
WC_API HRESULT HcsWaitForOperationResult(HCS_OPERATION operation, DWORD timeoutMs, PWSTR *resultDocument) {
    return wc_op_result(operation, timeoutMs, 1, NULL, resultDocument);
}
WC_API HRESULT HcsWaitForOperationResultAndProcessInfo(HCS_OPERATION operation, DWORD timeoutMs,
                                                       HCS_PROCESS_INFORMATION *processInformation,
                                                       PWSTR *resultDocument) {
    return wc_op_result(operation, timeoutMs, 1, processInformation, resultDocument);
}
WC_API HRESULT HcsSetOperationCallback(HCS_OPERATION operation, const void *context,
                                       HCS_OPERATION_COMPLETION callback) {
    return wc_op_set_callback(operation, context, callback);
}
WC_API HRESULT HcsCancelOperation(HCS_OPERATION operation) {
    return wc_call("HcsCancelOperation", "o", operation);
}

/* ---- compute systems ------------------------------------------------------------------------ */

WC_API HRESULT HcsEnumerateComputeSystems(PCWSTR query, HCS_OPERATION operation) {
    OP_CALL(OpEnumerate, "HcsEnumerateComputeSystems", "so", query, operation);
}
WC_API HRESULT HcsEnumerateComputeSystemsInNamespace(PCWSTR idNamespace, PCWSTR query, HCS_OPERATION operation) {
    OP_CALL(OpEnumerate, "HcsEnumerateComputeSystemsInNamespace", "sso", idNamespace, query, operation);
}
WC_API HRESULT HcsCreateComputeSystem(PCWSTR id, PCWSTR configuration, HCS_OPERATION operation,
                                      const void *securityDescriptor, HCS_SYSTEM *computeSystem) {
    if (!computeSystem) return E_POINTER;
    OP_CALL(OpCreate, "HcsCreateComputeSystem", "ssoxH", id, configuration, operation, securityDescriptor,
            computeSystem);
}
WC_API HRESULT HcsCreateComputeSystemInNamespace(PCWSTR idNamespace, PCWSTR id, PCWSTR configuration,
                                                 HCS_OPERATION operation, const void *options,
                                                 HCS_SYSTEM *computeSystem) {
    if (!computeSystem) return E_POINTER;
    OP_CALL(OpCreate, "HcsCreateComputeSystemInNamespace", "sssoxH", idNamespace, id, configuration, operation,
            options, computeSystem);
}
WC_API HRESULT HcsOpenComputeSystem(PCWSTR id, DWORD requestedAccess, HCS_SYSTEM *computeSystem) {
    if (!computeSystem) return E_POINTER;
    return wc_call("HcsOpenComputeSystem", "suH", id, requestedAccess, computeSystem);
}
WC_API HRESULT HcsOpenComputeSystemInNamespace(PCWSTR idNamespace, PCWSTR id, DWORD requestedAccess,
                                               HCS_SYSTEM *computeSystem) {
    if (!computeSystem) return E_POINTER;
    return wc_call("HcsOpenComputeSystemInNamespace", "ssuH", idNamespace, id, requestedAccess, computeSystem);
}
/* No callback fires after close returns (hcsshim relies on this). */
WC_API void HcsCloseComputeSystem(HCS_SYSTEM computeSystem) {
    wc_forget_handle(wc_handle_id(computeSystem));
    wc_oneway("HcsCloseComputeSystem", "h", computeSystem);
}

#define SYSTEM_OP(name, type)                                                                             \
    WC_API HRESULT name(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options) {              \
        OP_CALL(type, #name, "hos", computeSystem, operation, options);                                   \
    }
SYSTEM_OP(HcsStartComputeSystem, OpStart)
SYSTEM_OP(HcsShutDownComputeSystem, OpShutdown)
SYSTEM_OP(HcsTerminateComputeSystem, OpTerminate)
SYSTEM_OP(HcsCrashComputeSystem, OpCrash)
SYSTEM_OP(HcsPauseComputeSystem, OpPause)
SYSTEM_OP(HcsResumeComputeSystem, OpResume)
SYSTEM_OP(HcsSaveComputeSystem, OpSave)

WC_API HRESULT HcsGetComputeSystemProperties(HCS_SYSTEM computeSystem, HCS_OPERATION operation,
                                             PCWSTR propertyQuery) {
    OP_CALL(OpGetProperties, "HcsGetComputeSystemProperties", "hos", computeSystem, operation, propertyQuery);
}
WC_API HRESULT HcsModifyComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR configuration,
                                      HANDLE identity) {
    OP_CALL(OpModify, "HcsModifyComputeSystem", "hosx", computeSystem, operation, configuration, identity);
}
WC_API HRESULT HcsWaitForComputeSystemExit(HCS_SYSTEM computeSystem, DWORD timeoutMs, PWSTR *result) {
    return wc_call("HcsWaitForComputeSystemExit", "huS", computeSystem, timeoutMs, result);
}
WC_API HRESULT HcsSetComputeSystemCallback(HCS_SYSTEM computeSystem, UINT32 callbackOptions, const void *context,
                                           HCS_EVENT_CALLBACK callback) {
    if (!callback) return E_POINTER;
    HRESULT hr = wc_call("HcsSetComputeSystemCallback", "hu", computeSystem, callbackOptions);
    if (hr < 0) return hr;
    return wc_set_event_callback(wc_handle_id(computeSystem), callback, (void *)context);
}

/* ---- processes -------------------------------------------------------------------------------- */

WC_API HRESULT HcsCreateProcess(HCS_SYSTEM computeSystem, PCWSTR processParameters, HCS_OPERATION operation,
                                const void *securityDescriptor, HCS_PROCESS *process) {
    if (!process) return E_POINTER;
    OP_CALL(OpCreateProcess, "HcsCreateProcess", "hsoxH", computeSystem, processParameters, operation,
            securityDescriptor, process);
}
WC_API HRESULT HcsOpenProcess(HCS_SYSTEM computeSystem, DWORD processId, DWORD requestedAccess,
                              HCS_PROCESS *process) {
    if (!process) return E_POINTER;
    return wc_call("HcsOpenProcess", "huuH", computeSystem, processId, requestedAccess, process);
}
WC_API void HcsCloseProcess(HCS_PROCESS process) {
    wc_forget_handle(wc_handle_id(process));
    wc_oneway("HcsCloseProcess", "h", process);
}
WC_API HRESULT HcsTerminateProcess(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR options) {
    OP_CALL(OpTerminate, "HcsTerminateProcess", "hos", process, operation, options);
}
WC_API HRESULT HcsSignalProcess(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR options) {
    OP_CALL(OpSignalProcess, "HcsSignalProcess", "hos", process, operation, options);
}
WC_API HRESULT HcsGetProcessInfo(HCS_PROCESS process, HCS_OPERATION operation) {
    OP_CALL(OpGetProcessInfo, "HcsGetProcessInfo", "ho", process, operation);
}
WC_API HRESULT HcsGetProcessProperties(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR propertyQuery) {
    OP_CALL(OpGetProcessProperties, "HcsGetProcessProperties", "hos", process, operation, propertyQuery);
}
WC_API HRESULT HcsModifyProcess(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR settings) {
    OP_CALL(OpModifyProcess, "HcsModifyProcess", "hos", process, operation, settings);
}
WC_API HRESULT HcsSetProcessCallback(HCS_PROCESS process, UINT32 callbackOptions, void *context,
                                     HCS_EVENT_CALLBACK callback) {
    if (!callback) return E_POINTER;
    HRESULT hr = wc_call("HcsSetProcessCallback", "hu", process, callbackOptions);
    if (hr < 0) return hr;
    return wc_set_event_callback(wc_handle_id(process), callback, context);
}
WC_API HRESULT HcsWaitForProcessExit(HCS_PROCESS process, DWORD timeoutMs, PWSTR *result) {
    return wc_call("HcsWaitForProcessExit", "huS", process, timeoutMs, result);
}

/* ---- service, diagnostics, VM helpers ---------------------------------------------------- */

WC_API HRESULT HcsGetServiceProperties(PCWSTR propertyQuery, PWSTR *result) {
    return wc_call("HcsGetServiceProperties", "sS", propertyQuery, result);
}
WC_API HRESULT HcsModifyServiceSettings(PCWSTR settings, PWSTR *result) {
    return wc_call("HcsModifyServiceSettings", "sS", settings, result);
}
WC_API HRESULT HcsSubmitWerReport(PCWSTR settings) { return wc_call("HcsSubmitWerReport", "s", settings); }
WC_API HRESULT HcsCreateEmptyGuestStateFile(PCWSTR guestStateFilePath) {
    return wc_call("HcsCreateEmptyGuestStateFile", "s", guestStateFilePath);
}
WC_API HRESULT HcsCreateEmptyRuntimeStateFile(PCWSTR runtimeStateFilePath) {
    return wc_call("HcsCreateEmptyRuntimeStateFile", "s", runtimeStateFilePath);
}
WC_API HRESULT HcsGrantVmAccess(PCWSTR vmId, PCWSTR filePath) {
    return wc_call("HcsGrantVmAccess", "ss", vmId, filePath);
}
WC_API HRESULT HcsRevokeVmAccess(PCWSTR vmId, PCWSTR filePath) {
    return wc_call("HcsRevokeVmAccess", "ss", vmId, filePath);
}
WC_API HRESULT HcsGrantVmGroupAccess(PCWSTR filePath) { return wc_call("HcsGrantVmGroupAccess", "s", filePath); }
WC_API HRESULT HcsRevokeVmGroupAccess(PCWSTR filePath) { return wc_call("HcsRevokeVmGroupAccess", "s", filePath); }
WC_API HRESULT HcsGetProcessorCompatibilityFromSavedState(PCWSTR RuntimeFileName, PCWSTR *ProcessorFeaturesString) {
    return wc_call("HcsGetProcessorCompatibilityFromSavedState", "sS", RuntimeFileName,
                   (PWSTR *)ProcessorFeaturesString);
}
