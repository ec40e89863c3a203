"""cffi declarations of the HCS DLLs, per DLL and API generation.

The text here is what cffi parses in ABI mode. It must match x64 Windows exactly (LLP64:
``long`` is 32 bits, so HRESULT is ``int32_t``); ``../shared/tools/check-cdefs`` compares every
prototype with the SDK headers (gen3) and the export list (gen1/gen2).

Types are declared once (:data:`TYPES`) and shared by every DLL's FFI through ``ffi.include``,
so a struct allocated for one DLL can be passed to another. Prototypes are grouped per DLL;
:data:`GENERATION_EXPORTS` says which of them a generation uses.
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

# -- allocators ----------------------------------------------------------------------------------
KERNEL32: Mapping[str, str] = {"LocalFree": "HANDLE LocalFree(HANDLE hMem);"}
OLE32: Mapping[str, str] = {"CoTaskMemFree": "void CoTaskMemFree(void *pv);"}

PROTOTYPES: Mapping[str, Mapping[str, str]] = {
    "vmcompute.dll": VMCOMPUTE,
    "computecore.dll": COMPUTECORE,
    "computestorage.dll": COMPUTESTORAGE,
    "computenetwork.dll": COMPUTENETWORK,
    "kernel32.dll": KERNEL32,
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
        # gen3 hosts keep vmcompute for NameToGuid and the process-isolation layer API, as hcsshim does.
        "vmcompute.dll": (*LAYER_API, *GEN2_LAYER_EXTRAS),
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


def prototypes(dll: str, generation: int) -> str:
    """The prototype lines of ``dll`` for ``generation`` (no types)."""
    try:
        names = GENERATION_EXPORTS[generation][dll]
    except KeyError:
        raise ValueError(f"{dll} is not used by API generation {generation}") from None
    table = PROTOTYPES[dll]
    return "\n".join(table[name] for name in names) + "\n"


def declarations(dll: str, generation: int) -> str:
    """The complete cdef text (shared types, then prototypes) for ``dll`` in ``generation``."""
    return TYPES + "\n" + prototypes(dll.lower(), generation)
