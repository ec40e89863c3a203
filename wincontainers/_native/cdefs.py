"""cffi declarations of the HCS DLLs, per DLL and API generation.

The text here is what cffi parses in ABI mode. It must match x64 Windows exactly (LLP64:
``long`` is 32 bits, so HRESULT is ``int32_t``); ``../shared/tools/check-cdefs`` compares every
prototype with the SDK headers (gen3) and the export list (gen1/gen2).

Types are declared once (:data:`TYPES`) and shared by every DLL's FFI through ``ffi.include``,
so a struct allocated for one DLL can be passed to another. Prototypes are grouped per DLL;
:data:`GENERATION_EXPORTS` says which of them a generation uses.

Why one file: it is one declaration table that check-cdefs verifies as a whole; the prototypes of a
function that several DLLs export differently must be read side by side.
"""

from __future__ import annotations

from typing import Mapping, Sequence

TYPES = r"""
typedef int32_t HRESULT;
typedef uint32_t DWORD;
typedef int BOOL;
typedef void *HANDLE;
typedef const char16_t *PCWSTR;
typedef char16_t *PWSTR;
typedef uint32_t UINT32;
typedef uint64_t UINT64;

typedef struct _GUID {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t  Data4[8];
} GUID;

typedef void *HCS_SYSTEM;
typedef void *HCS_PROCESS;
typedef void *HCS_OPERATION;
typedef void *HCS_CALLBACK;

typedef struct _DriverInfo {
    int    Flavour;
    PCWSTR HomeDir;
} DriverInfo;

typedef struct _WC_LAYER_DESCRIPTOR {
    GUID   LayerId;
    UINT32 Flags;
    PCWSTR Path;
} WC_LAYER_DESCRIPTOR;

typedef struct _HCS_PROCESS_INFORMATION {
    DWORD  ProcessId;
    DWORD  Reserved;
    HANDLE StdInput;
    HANDLE StdOutput;
    HANDLE StdError;
} HCS_PROCESS_INFORMATION;

typedef struct _HCS_EVENT {
    UINT32        Type;
    PCWSTR        EventData;
    HCS_OPERATION Operation;
} HCS_EVENT;

typedef struct _FILE_BASIC_INFO {
    UINT64 CreationTime;
    UINT64 LastAccessTime;
    UINT64 LastWriteTime;
    UINT64 ChangeTime;
    DWORD  FileAttributes;
} FILE_BASIC_INFO;

typedef void (*HCS_NOTIFICATION_CALLBACK)(DWORD notificationType, void *context,
                                          HRESULT notificationStatus, PCWSTR notificationData);
typedef void (*HCS_EVENT_CALLBACK)(HCS_EVENT *event, void *context);
typedef void (*HCS_OPERATION_COMPLETION)(HCS_OPERATION operation, void *context);
typedef void (*HCN_NOTIFICATION_CALLBACK)(DWORD notificationType, void *context,
                                          HRESULT notificationStatus, PCWSTR notificationData);
"""

# -- vmcompute.dll -------------------------------------------------------------------------------
# One namespace for the whole DLL: no export name was ever reused with another signature there.
VMCOMPUTE: Mapping[str, str] = {
    # gen1 string-id compute system API (TP3/TP4)
    "CreateComputeSystem": "HRESULT CreateComputeSystem(PCWSTR id, PCWSTR configuration);",
    "StartComputeSystem": "HRESULT StartComputeSystem(PCWSTR id);",
    "ShutdownComputeSystem": "HRESULT ShutdownComputeSystem(PCWSTR id, DWORD timeout);",
    "TerminateComputeSystem": "HRESULT TerminateComputeSystem(PCWSTR id);",
    "CreateProcessWithStdHandlesInComputeSystem": (
        "HRESULT CreateProcessWithStdHandlesInComputeSystem(PCWSTR id, PCWSTR paramsJson, DWORD *processId,"
        " HANDLE *stdIn, HANDLE *stdOut, HANDLE *stdErr);"
    ),
    "WaitForProcessInComputeSystem": (
        "HRESULT WaitForProcessInComputeSystem(PCWSTR id, DWORD processId, DWORD timeout, DWORD *exitCode);"
    ),
    "TerminateProcessInComputeSystem": "HRESULT TerminateProcessInComputeSystem(PCWSTR id, DWORD processId);",
    # USHORT height/width widened to UINT32: identical on x64 (register-passed).
    "ResizeConsoleInComputeSystem": (
        "HRESULT ResizeConsoleInComputeSystem(PCWSTR id, DWORD processId, UINT32 height, UINT32 width, DWORD flags);"
    ),
    "CopyLayer": (
        "HRESULT CopyLayer(DriverInfo *info, PCWSTR srcId, PCWSTR dstId, WC_LAYER_DESCRIPTOR *layers, DWORD layerCount);"
    ),
    # layer API, shared by every generation that uses vmcompute layers
    "LayerExists": "HRESULT LayerExists(DriverInfo *info, PCWSTR id, BOOL *exists);",
    "CreateLayer": "HRESULT CreateLayer(DriverInfo *info, PCWSTR id, PCWSTR parentId);",
    "DestroyLayer": "HRESULT DestroyLayer(DriverInfo *info, PCWSTR id);",
    "ActivateLayer": "HRESULT ActivateLayer(DriverInfo *info, PCWSTR id);",
    "DeactivateLayer": "HRESULT DeactivateLayer(DriverInfo *info, PCWSTR id);",
    # SIZE_T widened spelling: UINT64 is exact on x64.
    "GetLayerMountPath": "HRESULT GetLayerMountPath(DriverInfo *info, PCWSTR id, UINT64 *length, PWSTR buffer);",
    "CreateSandboxLayer": (
        "HRESULT CreateSandboxLayer(DriverInfo *info, PCWSTR id, PCWSTR parentId, WC_LAYER_DESCRIPTOR *layers,"
        " DWORD layerCount);"
    ),
    "PrepareLayer": "HRESULT PrepareLayer(DriverInfo *info, PCWSTR id, WC_LAYER_DESCRIPTOR *layers, DWORD layerCount);",
    "UnprepareLayer": "HRESULT UnprepareLayer(DriverInfo *info, PCWSTR id);",
    "ExportLayer": (
        "HRESULT ExportLayer(DriverInfo *info, PCWSTR id, PCWSTR exportFolderPath, WC_LAYER_DESCRIPTOR *layers,"
        " DWORD layerCount);"
    ),
    "ImportLayer": (
        "HRESULT ImportLayer(DriverInfo *info, PCWSTR id, PCWSTR importFolderPath, WC_LAYER_DESCRIPTOR *layers,"
        " DWORD layerCount);"
    ),
    "GetBaseImages": "HRESULT GetBaseImages(PWSTR *imageData);",
    "NameToGuid": "HRESULT NameToGuid(PCWSTR name, GUID *guid);",
    "ExpandSandboxSize": "HRESULT ExpandSandboxSize(DriverInfo *info, PCWSTR id, UINT64 size);",
    "ProcessBaseImage": "HRESULT ProcessBaseImage(PCWSTR path);",
    "ProcessUtilityImage": "HRESULT ProcessUtilityImage(PCWSTR path);",
    "GrantVmAccess": "HRESULT GrantVmAccess(PCWSTR vmId, PCWSTR filePath);",
    "ImportLayerBegin": (
        "HRESULT ImportLayerBegin(DriverInfo *info, PCWSTR id, WC_LAYER_DESCRIPTOR *layers, DWORD layerCount,"
        " HANDLE *context);"
    ),
    "ImportLayerNext": "HRESULT ImportLayerNext(HANDLE context, PCWSTR fileName, FILE_BASIC_INFO *fileInfo);",
    "ImportLayerWrite": "HRESULT ImportLayerWrite(HANDLE context, void *buffer, DWORD bufferSize);",
    "ImportLayerEnd": "HRESULT ImportLayerEnd(HANDLE context);",
    "ExportLayerBegin": (
        "HRESULT ExportLayerBegin(DriverInfo *info, PCWSTR id, WC_LAYER_DESCRIPTOR *layers, DWORD layerCount,"
        " HANDLE *context);"
    ),
    # LONGLONG fileSize spelled UINT64: same size and passing on x64; the value is never negative.
    "ExportLayerNext": (
        "HRESULT ExportLayerNext(HANDLE context, PWSTR *fileName, FILE_BASIC_INFO *fileInfo, UINT64 *fileSize,"
        " BOOL *deleted);"
    ),
    "ExportLayerRead": "HRESULT ExportLayerRead(HANDLE context, void *buffer, DWORD bufferSize, DWORD *bytesRead);",
    "ExportLayerEnd": "HRESULT ExportLayerEnd(HANDLE context);",
    # gen2 handle-based compute system API (Server 2016 RTM and later)
    "HcsEnumerateComputeSystems": "HRESULT HcsEnumerateComputeSystems(PCWSTR query, PWSTR *computeSystems, PWSTR *result);",
    "HcsCreateComputeSystem": (
        "HRESULT HcsCreateComputeSystem(PCWSTR id, PCWSTR configuration, HANDLE identity, HCS_SYSTEM *computeSystem,"
        " PWSTR *result);"
    ),
    "HcsOpenComputeSystem": "HRESULT HcsOpenComputeSystem(PCWSTR id, HCS_SYSTEM *computeSystem, PWSTR *result);",
    "HcsCloseComputeSystem": "HRESULT HcsCloseComputeSystem(HCS_SYSTEM computeSystem);",
    "HcsStartComputeSystem": "HRESULT HcsStartComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result);",
    "HcsShutdownComputeSystem": (
        "HRESULT HcsShutdownComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result);"
    ),
    "HcsTerminateComputeSystem": (
        "HRESULT HcsTerminateComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result);"
    ),
    "HcsPauseComputeSystem": "HRESULT HcsPauseComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result);",
    "HcsResumeComputeSystem": "HRESULT HcsResumeComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result);",
    "HcsSaveComputeSystem": "HRESULT HcsSaveComputeSystem(HCS_SYSTEM computeSystem, PCWSTR options, PWSTR *result);",
    "HcsGetComputeSystemProperties": (
        "HRESULT HcsGetComputeSystemProperties(HCS_SYSTEM computeSystem, PCWSTR propertyQuery,"
        " PWSTR *properties, PWSTR *result);"
    ),
    "HcsModifyComputeSystem": (
        "HRESULT HcsModifyComputeSystem(HCS_SYSTEM computeSystem, PCWSTR configuration, PWSTR *result);"
    ),
    "HcsRegisterComputeSystemCallback": (
        "HRESULT HcsRegisterComputeSystemCallback(HCS_SYSTEM computeSystem, HCS_NOTIFICATION_CALLBACK callback,"
        " void *context, HCS_CALLBACK *callbackHandle);"
    ),
    "HcsUnregisterComputeSystemCallback": "HRESULT HcsUnregisterComputeSystemCallback(HCS_CALLBACK callbackHandle);",
    "HcsCreateProcess": (
        "HRESULT HcsCreateProcess(HCS_SYSTEM computeSystem, PCWSTR processParameters,"
        " HCS_PROCESS_INFORMATION *processInformation, HCS_PROCESS *process, PWSTR *result);"
    ),
    "HcsOpenProcess": (
        "HRESULT HcsOpenProcess(HCS_SYSTEM computeSystem, DWORD processId, HCS_PROCESS *process, PWSTR *result);"
    ),
    "HcsCloseProcess": "HRESULT HcsCloseProcess(HCS_PROCESS process);",
    "HcsTerminateProcess": "HRESULT HcsTerminateProcess(HCS_PROCESS process, PWSTR *result);",
    "HcsSignalProcess": "HRESULT HcsSignalProcess(HCS_PROCESS process, PCWSTR options, PWSTR *result);",
    "HcsGetProcessInfo": (
        "HRESULT HcsGetProcessInfo(HCS_PROCESS process, HCS_PROCESS_INFORMATION *processInformation, PWSTR *result);"
    ),
    "HcsGetProcessProperties": (
        "HRESULT HcsGetProcessProperties(HCS_PROCESS process, PWSTR *processProperties, PWSTR *result);"
    ),
    "HcsModifyProcess": "HRESULT HcsModifyProcess(HCS_PROCESS process, PCWSTR settings, PWSTR *result);",
    "HcsRegisterProcessCallback": (
        "HRESULT HcsRegisterProcessCallback(HCS_PROCESS process, HCS_NOTIFICATION_CALLBACK callback, void *context,"
        " HCS_CALLBACK *callbackHandle);"
    ),
    "HcsUnregisterProcessCallback": "HRESULT HcsUnregisterProcessCallback(HCS_CALLBACK callbackHandle);",
    "HcsGetServiceProperties": (
        "HRESULT HcsGetServiceProperties(PCWSTR propertyQuery, PWSTR *properties, PWSTR *result);"
    ),
    "HcsModifyServiceSettings": "HRESULT HcsModifyServiceSettings(PCWSTR settings, PWSTR *result);",
    "HNSCall": "HRESULT HNSCall(PCWSTR method, PCWSTR path, PCWSTR request, PWSTR *response);",
}

# -- computecore.dll (gen3) ----------------------------------------------------------------------
COMPUTECORE: Mapping[str, str] = {
    "HcsEnumerateComputeSystems": "HRESULT HcsEnumerateComputeSystems(PCWSTR query, HCS_OPERATION operation);",
    "HcsEnumerateComputeSystemsInNamespace": (
        "HRESULT HcsEnumerateComputeSystemsInNamespace(PCWSTR idNamespace, PCWSTR query, HCS_OPERATION operation);"
    ),
    "HcsCreateOperation": "HCS_OPERATION HcsCreateOperation(const void *context, HCS_OPERATION_COMPLETION callback);",
    "HcsCloseOperation": "void HcsCloseOperation(HCS_OPERATION operation);",
    "HcsGetOperationContext": "void *HcsGetOperationContext(HCS_OPERATION operation);",
    "HcsSetOperationContext": "HRESULT HcsSetOperationContext(HCS_OPERATION operation, const void *context);",
    "HcsGetComputeSystemFromOperation": "HCS_SYSTEM HcsGetComputeSystemFromOperation(HCS_OPERATION operation);",
    "HcsGetProcessFromOperation": "HCS_PROCESS HcsGetProcessFromOperation(HCS_OPERATION operation);",
    # HCS_OPERATION_TYPE is a 4-byte enum; int is its exact ABI.
    "HcsGetOperationType": "int HcsGetOperationType(HCS_OPERATION operation);",
    "HcsGetOperationId": "UINT64 HcsGetOperationId(HCS_OPERATION operation);",
    "HcsGetOperationResult": "HRESULT HcsGetOperationResult(HCS_OPERATION operation, PWSTR *resultDocument);",
    "HcsGetOperationResultAndProcessInfo": (
        "HRESULT HcsGetOperationResultAndProcessInfo(HCS_OPERATION operation,"
        " HCS_PROCESS_INFORMATION *processInformation, PWSTR *resultDocument);"
    ),
    "HcsGetProcessorCompatibilityFromSavedState": (
        "HRESULT HcsGetProcessorCompatibilityFromSavedState(PCWSTR RuntimeFileName, PCWSTR *ProcessorFeaturesString);"
    ),
    "HcsWaitForOperationResult": (
        "HRESULT HcsWaitForOperationResult(HCS_OPERATION operation, DWORD timeoutMs, PWSTR *resultDocument);"
    ),
    "HcsWaitForOperationResultAndProcessInfo": (
        "HRESULT HcsWaitForOperationResultAndProcessInfo(HCS_OPERATION operation, DWORD timeoutMs,"
        " HCS_PROCESS_INFORMATION *processInformation, PWSTR *resultDocument);"
    ),
    "HcsSetOperationCallback": (
        "HRESULT HcsSetOperationCallback(HCS_OPERATION operation, const void *context,"
        " HCS_OPERATION_COMPLETION callback);"
    ),
    "HcsCancelOperation": "HRESULT HcsCancelOperation(HCS_OPERATION operation);",
    # const SECURITY_DESCRIPTOR * / const HCS_CREATE_OPTIONS *: opaque here, always NULL.
    "HcsCreateComputeSystem": (
        "HRESULT HcsCreateComputeSystem(PCWSTR id, PCWSTR configuration, HCS_OPERATION operation,"
        " const void *securityDescriptor, HCS_SYSTEM *computeSystem);"
    ),
    "HcsCreateComputeSystemInNamespace": (
        "HRESULT HcsCreateComputeSystemInNamespace(PCWSTR idNamespace, PCWSTR id, PCWSTR configuration,"
        " HCS_OPERATION operation, const void *options, HCS_SYSTEM *computeSystem);"
    ),
    "HcsOpenComputeSystem": "HRESULT HcsOpenComputeSystem(PCWSTR id, DWORD requestedAccess, HCS_SYSTEM *computeSystem);",
    "HcsOpenComputeSystemInNamespace": (
        "HRESULT HcsOpenComputeSystemInNamespace(PCWSTR idNamespace, PCWSTR id, DWORD requestedAccess,"
        " HCS_SYSTEM *computeSystem);"
    ),
    "HcsCloseComputeSystem": "void HcsCloseComputeSystem(HCS_SYSTEM computeSystem);",
    "HcsStartComputeSystem": (
        "HRESULT HcsStartComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsShutDownComputeSystem": (
        "HRESULT HcsShutDownComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsTerminateComputeSystem": (
        "HRESULT HcsTerminateComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsCrashComputeSystem": (
        "HRESULT HcsCrashComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsPauseComputeSystem": (
        "HRESULT HcsPauseComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsResumeComputeSystem": (
        "HRESULT HcsResumeComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsSaveComputeSystem": (
        "HRESULT HcsSaveComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR options);"
    ),
    "HcsGetComputeSystemProperties": (
        "HRESULT HcsGetComputeSystemProperties(HCS_SYSTEM computeSystem, HCS_OPERATION operation,"
        " PCWSTR propertyQuery);"
    ),
    "HcsModifyComputeSystem": (
        "HRESULT HcsModifyComputeSystem(HCS_SYSTEM computeSystem, HCS_OPERATION operation, PCWSTR configuration,"
        " HANDLE identity);"
    ),
    "HcsWaitForComputeSystemExit": (
        "HRESULT HcsWaitForComputeSystemExit(HCS_SYSTEM computeSystem, DWORD timeoutMs, PWSTR *result);"
    ),
    # HCS_EVENT_OPTIONS is a 4-byte flags enum: UINT32.
    "HcsSetComputeSystemCallback": (
        "HRESULT HcsSetComputeSystemCallback(HCS_SYSTEM computeSystem, UINT32 callbackOptions, const void *context,"
        " HCS_EVENT_CALLBACK callback);"
    ),
    "HcsCreateProcess": (
        "HRESULT HcsCreateProcess(HCS_SYSTEM computeSystem, PCWSTR processParameters, HCS_OPERATION operation,"
        " const void *securityDescriptor, HCS_PROCESS *process);"
    ),
    "HcsOpenProcess": (
        "HRESULT HcsOpenProcess(HCS_SYSTEM computeSystem, DWORD processId, DWORD requestedAccess,"
        " HCS_PROCESS *process);"
    ),
    "HcsCloseProcess": "void HcsCloseProcess(HCS_PROCESS process);",
    "HcsTerminateProcess": "HRESULT HcsTerminateProcess(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR options);",
    "HcsSignalProcess": "HRESULT HcsSignalProcess(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR options);",
    "HcsGetProcessInfo": "HRESULT HcsGetProcessInfo(HCS_PROCESS process, HCS_OPERATION operation);",
    "HcsGetProcessProperties": (
        "HRESULT HcsGetProcessProperties(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR propertyQuery);"
    ),
    "HcsModifyProcess": "HRESULT HcsModifyProcess(HCS_PROCESS process, HCS_OPERATION operation, PCWSTR settings);",
    "HcsSetProcessCallback": (
        "HRESULT HcsSetProcessCallback(HCS_PROCESS process, UINT32 callbackOptions, void *context,"
        " HCS_EVENT_CALLBACK callback);"
    ),
    "HcsWaitForProcessExit": "HRESULT HcsWaitForProcessExit(HCS_PROCESS process, DWORD timeoutMs, PWSTR *result);",
    "HcsGetServiceProperties": "HRESULT HcsGetServiceProperties(PCWSTR propertyQuery, PWSTR *result);",
    "HcsModifyServiceSettings": "HRESULT HcsModifyServiceSettings(PCWSTR settings, PWSTR *result);",
    "HcsSubmitWerReport": "HRESULT HcsSubmitWerReport(PCWSTR settings);",
    "HcsCreateEmptyGuestStateFile": "HRESULT HcsCreateEmptyGuestStateFile(PCWSTR guestStateFilePath);",
    "HcsCreateEmptyRuntimeStateFile": "HRESULT HcsCreateEmptyRuntimeStateFile(PCWSTR runtimeStateFilePath);",
    "HcsGrantVmAccess": "HRESULT HcsGrantVmAccess(PCWSTR vmId, PCWSTR filePath);",
    "HcsRevokeVmAccess": "HRESULT HcsRevokeVmAccess(PCWSTR vmId, PCWSTR filePath);",
    "HcsGrantVmGroupAccess": "HRESULT HcsGrantVmGroupAccess(PCWSTR filePath);",
    "HcsRevokeVmGroupAccess": "HRESULT HcsRevokeVmGroupAccess(PCWSTR filePath);",
}

# -- computestorage.dll (gen3) -------------------------------------------------------------------
COMPUTESTORAGE: Mapping[str, str] = {
    "HcsImportLayer": "HRESULT HcsImportLayer(PCWSTR layerPath, PCWSTR sourceFolderPath, PCWSTR layerData);",
    "HcsExportLayer": (
        "HRESULT HcsExportLayer(PCWSTR layerPath, PCWSTR exportFolderPath, PCWSTR layerData, PCWSTR options);"
    ),
    "HcsExportLegacyWritableLayer": (
        "HRESULT HcsExportLegacyWritableLayer(PCWSTR writableLayerMountPath, PCWSTR writableLayerFolderPath,"
        " PCWSTR exportFolderPath, PCWSTR layerData);"
    ),
    "HcsDestroyLayer": "HRESULT HcsDestroyLayer(PCWSTR layerPath);",
    "HcsSetupBaseOSLayer": "HRESULT HcsSetupBaseOSLayer(PCWSTR layerPath, HANDLE vhdHandle, PCWSTR options);",
    "HcsSetupBaseOSVolume": "HRESULT HcsSetupBaseOSVolume(PCWSTR layerPath, PCWSTR volumePath, PCWSTR options);",
    "HcsInitializeWritableLayer": (
        "HRESULT HcsInitializeWritableLayer(PCWSTR writableLayerPath, PCWSTR layerData, PCWSTR options);"
    ),
    "HcsInitializeLegacyWritableLayer": (
        "HRESULT HcsInitializeLegacyWritableLayer(PCWSTR writableLayerMountPath, PCWSTR writableLayerFolderPath,"
        " PCWSTR layerData, PCWSTR options);"
    ),
    "HcsAttachLayerStorageFilter": "HRESULT HcsAttachLayerStorageFilter(PCWSTR layerPath, PCWSTR layerData);",
    "HcsDetachLayerStorageFilter": "HRESULT HcsDetachLayerStorageFilter(PCWSTR layerPath);",
    "HcsFormatWritableLayerVhd": "HRESULT HcsFormatWritableLayerVhd(HANDLE vhdHandle);",
    "HcsGetLayerVhdMountPath": "HRESULT HcsGetLayerVhdMountPath(HANDLE vhdHandle, PWSTR *mountPath);",
}

# -- computenetwork.dll (gen3) -------------------------------------------------------------------
# HCN_NETWORK / HCN_ENDPOINT / ... handles are void* (HANDLE); REFGUID is const GUID *.
_HCN_KINDS = (("Network", "Networks"), ("Namespace", "Namespaces"), ("Endpoint", "Endpoints"),
              ("LoadBalancer", "LoadBalancer"))


def _hcn_prototypes() -> dict[str, str]:
    protos: dict[str, str] = {}
    for kind, plural in _HCN_KINDS:
        enum_name = "LoadBalancers" if kind == "LoadBalancer" else plural
        protos[f"HcnEnumerate{enum_name}"] = (
            f"HRESULT HcnEnumerate{enum_name}(PCWSTR Query, PWSTR *{plural}, PWSTR *ErrorRecord);"
        )
        if kind == "Endpoint":
            protos["HcnCreateEndpoint"] = (
                "HRESULT HcnCreateEndpoint(HANDLE Network, const GUID *Id, PCWSTR Settings, HANDLE *Endpoint,"
                " PWSTR *ErrorRecord);"
            )
        else:
            protos[f"HcnCreate{kind}"] = (
                f"HRESULT HcnCreate{kind}(const GUID *Id, PCWSTR Settings, HANDLE *{kind}, PWSTR *ErrorRecord);"
            )
        protos[f"HcnOpen{kind}"] = f"HRESULT HcnOpen{kind}(const GUID *Id, HANDLE *{kind}, PWSTR *ErrorRecord);"
        protos[f"HcnModify{kind}"] = f"HRESULT HcnModify{kind}(HANDLE {kind}, PCWSTR Settings, PWSTR *ErrorRecord);"
        protos[f"HcnQuery{kind}Properties"] = (
            f"HRESULT HcnQuery{kind}Properties(HANDLE {kind}, PCWSTR Query, PWSTR *Properties, PWSTR *ErrorRecord);"
        )
        protos[f"HcnDelete{kind}"] = f"HRESULT HcnDelete{kind}(const GUID *Id, PWSTR *ErrorRecord);"
        protos[f"HcnClose{kind}"] = f"HRESULT HcnClose{kind}(HANDLE {kind});"
    protos["HcnRegisterServiceCallback"] = (
        "HRESULT HcnRegisterServiceCallback(HCN_NOTIFICATION_CALLBACK Callback, void *Context,"
        " HANDLE *CallbackHandle);"
    )
    protos["HcnUnregisterServiceCallback"] = "HRESULT HcnUnregisterServiceCallback(HANDLE CallbackHandle);"
    return protos


COMPUTENETWORK: Mapping[str, str] = _hcn_prototypes()

# -- Win32: kernel32.dll and advapi32.dll -------------------------------------------------------
# The file, handle, process and privilege calls the library makes besides HCS: layer folders with
# backup semantics, state files, leases, the process token. The same declarations serve every API
# generation. ``check-cdefs`` holds them against the mingw-w64 prototypes (win32-subset.h).
WIN32_TYPES = r"""
typedef uint32_t UINT;
typedef uint8_t BOOLEAN;

typedef struct _FILETIME {
    DWORD dwLowDateTime;
    DWORD dwHighDateTime;
} FILETIME;

typedef struct _SECURITY_ATTRIBUTES {
    DWORD nLength;
    void *lpSecurityDescriptor;
    BOOL  bInheritHandle;
} SECURITY_ATTRIBUTES;

/* Only synchronous I/O is used: the union of Offset/OffsetHigh and Pointer is spelled as its
   first member. */
typedef struct _OVERLAPPED {
    uint64_t Internal;
    uint64_t InternalHigh;
    DWORD    Offset;
    DWORD    OffsetHigh;
    HANDLE   hEvent;
} OVERLAPPED;

typedef struct _BY_HANDLE_FILE_INFORMATION {
    DWORD    dwFileAttributes;
    FILETIME ftCreationTime;
    FILETIME ftLastAccessTime;
    FILETIME ftLastWriteTime;
    DWORD    dwVolumeSerialNumber;
    DWORD    nFileSizeHigh;
    DWORD    nFileSizeLow;
    DWORD    nNumberOfLinks;
    DWORD    nFileIndexHigh;
    DWORD    nFileIndexLow;
} BY_HANDLE_FILE_INFORMATION;

typedef struct _WIN32_FILE_ATTRIBUTE_DATA {
    DWORD    dwFileAttributes;
    FILETIME ftCreationTime;
    FILETIME ftLastAccessTime;
    FILETIME ftLastWriteTime;
    DWORD    nFileSizeHigh;
    DWORD    nFileSizeLow;
} WIN32_FILE_ATTRIBUTE_DATA;

typedef struct _WIN32_FIND_DATAW {
    DWORD    dwFileAttributes;
    FILETIME ftCreationTime;
    FILETIME ftLastAccessTime;
    FILETIME ftLastWriteTime;
    DWORD    nFileSizeHigh;
    DWORD    nFileSizeLow;
    DWORD    dwReserved0;      /* the reparse tag when FILE_ATTRIBUTE_REPARSE_POINT is set */
    DWORD    dwReserved1;
    char16_t cFileName[260];
    char16_t cAlternateFileName[14];
} WIN32_FIND_DATAW;

typedef struct _FILE_STANDARD_INFO {
    int64_t AllocationSize;
    int64_t EndOfFile;
    DWORD   NumberOfLinks;
    BOOLEAN DeletePending;
    BOOLEAN Directory;
} FILE_STANDARD_INFO;

typedef struct _FILE_ID_INFO {
    uint64_t VolumeSerialNumber;
    uint8_t  FileId[16];
} FILE_ID_INFO;

typedef struct _FILE_ATTRIBUTE_TAG_INFO {
    DWORD FileAttributes;
    DWORD ReparseTag;
} FILE_ATTRIBUTE_TAG_INFO;

typedef struct _FILE_DISPOSITION_INFO {
    BOOLEAN DeleteFile;
} FILE_DISPOSITION_INFO;

/* The first member is a union of BOOLEAN ReplaceIfExists and DWORD Flags. */
typedef struct _FILE_RENAME_INFO {
    DWORD    Flags;
    HANDLE   RootDirectory;
    DWORD    FileNameLength;
    char16_t FileName[1];
} FILE_RENAME_INFO;

typedef struct _WIN32_STREAM_ID {
    DWORD    dwStreamId;
    DWORD    dwStreamAttributes;
    int64_t  Size;
    DWORD    dwStreamNameSize;
    char16_t cStreamName[1];
} WIN32_STREAM_ID;

typedef struct _LUID {
    DWORD   LowPart;
    int32_t HighPart;
} LUID;

typedef struct _LUID_AND_ATTRIBUTES {
    LUID  Luid;
    DWORD Attributes;
} LUID_AND_ATTRIBUTES;

typedef struct _TOKEN_PRIVILEGES {
    DWORD               PrivilegeCount;
    LUID_AND_ATTRIBUTES Privileges[1];
} TOKEN_PRIVILEGES;

typedef struct _TOKEN_ELEVATION {
    DWORD TokenIsElevated;
} TOKEN_ELEVATION;

typedef struct _SID_IDENTIFIER_AUTHORITY {
    uint8_t Value[6];
} SID_IDENTIFIER_AUTHORITY;
"""

# Enum-typed parameters (FILE_INFO_BY_HANDLE_CLASS, FINDEX_INFO_LEVELS, ...) are 4-byte ints;
# LARGE_INTEGER passed by value is int64_t; LPBYTE/LPVOID buffers are pointers.
KERNEL32: Mapping[str, str] = {
    "LocalFree": "HANDLE LocalFree(HANDLE hMem);",
    "GetLastError": "DWORD GetLastError(void);",
    "SetLastError": "void SetLastError(DWORD dwErrCode);",
    "CloseHandle": "BOOL CloseHandle(HANDLE hObject);",
    "CreateFileW": (
        "HANDLE CreateFileW(PCWSTR lpFileName, DWORD dwDesiredAccess, DWORD dwShareMode,"
        " SECURITY_ATTRIBUTES *lpSecurityAttributes, DWORD dwCreationDisposition, DWORD dwFlagsAndAttributes,"
        " HANDLE hTemplateFile);"
    ),
    "ReadFile": (
        "BOOL ReadFile(HANDLE hFile, void *lpBuffer, DWORD nNumberOfBytesToRead, DWORD *lpNumberOfBytesRead,"
        " OVERLAPPED *lpOverlapped);"
    ),
    "WriteFile": (
        "BOOL WriteFile(HANDLE hFile, const void *lpBuffer, DWORD nNumberOfBytesToWrite,"
        " DWORD *lpNumberOfBytesWritten, OVERLAPPED *lpOverlapped);"
    ),
    "SetFilePointerEx": (
        "BOOL SetFilePointerEx(HANDLE hFile, int64_t liDistanceToMove, int64_t *lpNewFilePointer,"
        " DWORD dwMoveMethod);"
    ),
    "GetFileSizeEx": "BOOL GetFileSizeEx(HANDLE hFile, int64_t *lpFileSize);",
    "SetEndOfFile": "BOOL SetEndOfFile(HANDLE hFile);",
    "FlushFileBuffers": "BOOL FlushFileBuffers(HANDLE hFile);",
    "BackupRead": (
        "BOOL BackupRead(HANDLE hFile, uint8_t *lpBuffer, DWORD nNumberOfBytesToRead, DWORD *lpNumberOfBytesRead,"
        " BOOL bAbort, BOOL bProcessSecurity, void **lpContext);"
    ),
    "BackupWrite": (
        "BOOL BackupWrite(HANDLE hFile, uint8_t *lpBuffer, DWORD nNumberOfBytesToWrite,"
        " DWORD *lpNumberOfBytesWritten, BOOL bAbort, BOOL bProcessSecurity, void **lpContext);"
    ),
    "GetFileInformationByHandleEx": (
        "BOOL GetFileInformationByHandleEx(HANDLE hFile, int FileInformationClass, void *lpFileInformation,"
        " DWORD dwBufferSize);"
    ),
    "SetFileInformationByHandle": (
        "BOOL SetFileInformationByHandle(HANDLE hFile, int FileInformationClass, void *lpFileInformation,"
        " DWORD dwBufferSize);"
    ),
    "GetFileInformationByHandle": (
        "BOOL GetFileInformationByHandle(HANDLE hFile, BY_HANDLE_FILE_INFORMATION *lpFileInformation);"
    ),
    "CreateDirectoryW": "BOOL CreateDirectoryW(PCWSTR lpPathName, SECURITY_ATTRIBUTES *lpSecurityAttributes);",
    "RemoveDirectoryW": "BOOL RemoveDirectoryW(PCWSTR lpPathName);",
    "DeleteFileW": "BOOL DeleteFileW(PCWSTR lpFileName);",
    "CreateHardLinkW": (
        "BOOL CreateHardLinkW(PCWSTR lpFileName, PCWSTR lpExistingFileName,"
        " SECURITY_ATTRIBUTES *lpSecurityAttributes);"
    ),
    "CreateSymbolicLinkW": (
        "BOOLEAN CreateSymbolicLinkW(PCWSTR lpSymlinkFileName, PCWSTR lpTargetFileName, DWORD dwFlags);"
    ),
    "MoveFileExW": "BOOL MoveFileExW(PCWSTR lpExistingFileName, PCWSTR lpNewFileName, DWORD dwFlags);",
    "GetFileAttributesW": "DWORD GetFileAttributesW(PCWSTR lpFileName);",
    "GetFileAttributesExW": (
        "BOOL GetFileAttributesExW(PCWSTR lpFileName, int fInfoLevelId, void *lpFileInformation);"
    ),
    "SetFileAttributesW": "BOOL SetFileAttributesW(PCWSTR lpFileName, DWORD dwFileAttributes);",
    "FindFirstFileExW": (
        "HANDLE FindFirstFileExW(PCWSTR lpFileName, int fInfoLevelId, void *lpFindFileData, int fSearchOp,"
        " void *lpSearchFilter, DWORD dwAdditionalFlags);"
    ),
    "FindNextFileW": "BOOL FindNextFileW(HANDLE hFindFile, WIN32_FIND_DATAW *lpFindFileData);",
    "FindClose": "BOOL FindClose(HANDLE hFindFile);",
    "GetDiskFreeSpaceExW": (
        "BOOL GetDiskFreeSpaceExW(PCWSTR lpDirectoryName, uint64_t *lpFreeBytesAvailableToCaller,"
        " uint64_t *lpTotalNumberOfBytes, uint64_t *lpTotalNumberOfFreeBytes);"
    ),
    "GetSystemDirectoryW": "UINT GetSystemDirectoryW(PWSTR lpBuffer, UINT uSize);",
    "GetCurrentProcess": "HANDLE GetCurrentProcess(void);",
    "GetCurrentProcessId": "DWORD GetCurrentProcessId(void);",
    "OpenProcess": "HANDLE OpenProcess(DWORD dwDesiredAccess, BOOL bInheritHandle, DWORD dwProcessId);",
    "GetExitCodeProcess": "BOOL GetExitCodeProcess(HANDLE hProcess, DWORD *lpExitCode);",
    "GetStdHandle": "HANDLE GetStdHandle(DWORD nStdHandle);",
    "GetConsoleMode": "BOOL GetConsoleMode(HANDLE hConsoleHandle, DWORD *lpMode);",
    "SetConsoleMode": "BOOL SetConsoleMode(HANDLE hConsoleHandle, DWORD dwMode);",
}

ADVAPI32: Mapping[str, str] = {
    "OpenProcessToken": "BOOL OpenProcessToken(HANDLE ProcessHandle, DWORD DesiredAccess, HANDLE *TokenHandle);",
    "LookupPrivilegeValueW": "BOOL LookupPrivilegeValueW(PCWSTR lpSystemName, PCWSTR lpName, LUID *lpLuid);",
    "AdjustTokenPrivileges": (
        "BOOL AdjustTokenPrivileges(HANDLE TokenHandle, BOOL DisableAllPrivileges, TOKEN_PRIVILEGES *NewState,"
        " DWORD BufferLength, TOKEN_PRIVILEGES *PreviousState, DWORD *ReturnLength);"
    ),
    "GetTokenInformation": (
        "BOOL GetTokenInformation(HANDLE TokenHandle, int TokenInformationClass, void *TokenInformation,"
        " DWORD TokenInformationLength, DWORD *ReturnLength);"
    ),
    "CheckTokenMembership": "BOOL CheckTokenMembership(HANDLE TokenHandle, void *SidToCheck, BOOL *IsMember);",
    "AllocateAndInitializeSid": (
        "BOOL AllocateAndInitializeSid(SID_IDENTIFIER_AUTHORITY *pIdentifierAuthority, uint8_t nSubAuthorityCount,"
        " DWORD nSubAuthority0, DWORD nSubAuthority1, DWORD nSubAuthority2, DWORD nSubAuthority3,"
        " DWORD nSubAuthority4, DWORD nSubAuthority5, DWORD nSubAuthority6, DWORD nSubAuthority7, void **pSid);"
    ),
    "FreeSid": "void *FreeSid(void *pSid);",
}

OLE32: Mapping[str, str] = {"CoTaskMemFree": "void CoTaskMemFree(void *pv);"}

PROTOTYPES: Mapping[str, Mapping[str, str]] = {
    "vmcompute.dll": VMCOMPUTE,
    "computecore.dll": COMPUTECORE,
    "computestorage.dll": COMPUTESTORAGE,
    "computenetwork.dll": COMPUTENETWORK,
    "kernel32.dll": KERNEL32,
    "advapi32.dll": ADVAPI32,
    "ole32.dll": OLE32,
}

# -- which functions each generation uses ------------------------------------------------------

GEN1_COMPUTE: Sequence[str] = (
    "CreateComputeSystem", "StartComputeSystem", "ShutdownComputeSystem", "TerminateComputeSystem",
    "CreateProcessWithStdHandlesInComputeSystem", "WaitForProcessInComputeSystem",
    "TerminateProcessInComputeSystem", "ResizeConsoleInComputeSystem",
)

LAYER_API: Sequence[str] = (
    "LayerExists", "CreateLayer", "DestroyLayer", "ActivateLayer", "DeactivateLayer", "GetLayerMountPath",
    "CreateSandboxLayer", "PrepareLayer", "UnprepareLayer", "ExportLayer", "ImportLayer", "GetBaseImages",
    "NameToGuid",
)

GEN2_LAYER_EXTRAS: Sequence[str] = (
    "ExpandSandboxSize", "ProcessBaseImage", "ProcessUtilityImage", "GrantVmAccess",
    "ImportLayerBegin", "ImportLayerNext", "ImportLayerWrite", "ImportLayerEnd",
    "ExportLayerBegin", "ExportLayerNext", "ExportLayerRead", "ExportLayerEnd",
)

GEN2_COMPUTE: Sequence[str] = tuple(
    name for name in VMCOMPUTE if name.startswith("Hcs")
) + ("HNSCall",)

GENERATION_EXPORTS: Mapping[int, Mapping[str, Sequence[str]]] = {
    1: {
        "vmcompute.dll": (*GEN1_COMPUTE, "CopyLayer", *LAYER_API),
        "ole32.dll": ("CoTaskMemFree",),
    },
    2: {
        "vmcompute.dll": (*GEN2_COMPUTE, *LAYER_API, *GEN2_LAYER_EXTRAS),
        "ole32.dll": ("CoTaskMemFree",),
    },
    3: {
        "computecore.dll": tuple(COMPUTECORE),
        "computestorage.dll": tuple(COMPUTESTORAGE),
        "computenetwork.dll": tuple(COMPUTENETWORK),
        # gen3 hosts keep vmcompute for NameToGuid and the process-isolation layer API, as hcsshim does,
        # and for its schema v1 compute systems: the vmcompute route of Hyper-V isolation.
        "vmcompute.dll": (*GEN2_COMPUTE, *LAYER_API, *GEN2_LAYER_EXTRAS),
        "kernel32.dll": ("LocalFree",),
        "ole32.dll": ("CoTaskMemFree",),
    },
}

#: The allocator that frees strings returned by a DLL (hcs-api.md pitfall 9).
STRING_ALLOCATOR: Mapping[str, str] = {
    "vmcompute.dll": "CoTaskMemFree",
    "computecore.dll": "LocalFree",
    "computestorage.dll": "LocalFree",
    "computenetwork.dll": "CoTaskMemFree",
}


#: The Win32 functions the library calls, the same on every API generation (LocalFree, which
#: frees gen3 strings, is declared with them).
WIN32_EXPORTS: Mapping[str, Sequence[str]] = {
    "kernel32.dll": tuple(KERNEL32),
    "advapi32.dll": tuple(ADVAPI32),
}


def prototypes(dll: str, generation: int) -> str:
    """The prototype lines of ``dll`` for ``generation`` (no types)."""
    if dll in WIN32_EXPORTS:
        if generation not in GENERATION_EXPORTS:
            raise ValueError(f"there is no API generation {generation}")
        names: Sequence[str] = WIN32_EXPORTS[dll]
    else:
        try:
            names = GENERATION_EXPORTS[generation][dll]
        except KeyError:
            raise ValueError(f"{dll} is not used by API generation {generation}") from None
    table = PROTOTYPES[dll]
    return "\n".join(table[name] for name in names) + "\n"


def declarations(dll: str, generation: int) -> str:
    """The complete cdef text (shared types, then prototypes) for ``dll`` in ``generation``."""
    dll = dll.lower()
    types = TYPES + WIN32_TYPES if dll in WIN32_EXPORTS else TYPES
    return types + "\n" + prototypes(dll, generation)
