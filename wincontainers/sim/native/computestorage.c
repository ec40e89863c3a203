/* Simulated computestorage.dll: gen3 layer storage calls (synchronous, no operation handle).
 * Strings are LocalAlloc'ed (kernel32!LocalFree). */
#include "wcsim.h"

WC_API HRESULT HcsImportLayer(PCWSTR layerPath, PCWSTR sourceFolderPath, PCWSTR layerData) {
    return wc_call("HcsImportLayer", "sss", layerPath, sourceFolderPath, layerData);
}
WC_API HRESULT HcsExportLayer(PCWSTR layerPath, PCWSTR exportFolderPath, PCWSTR layerData, PCWSTR options) {
    return wc_call("HcsExportLayer", "ssss", layerPath, exportFolderPath, layerData, options);
}
WC_API HRESULT HcsExportLegacyWritableLayer(PCWSTR writableLayerMountPath, PCWSTR writableLayerFolderPath,
                                            PCWSTR exportFolderPath, PCWSTR layerData) {
    return wc_call("HcsExportLegacyWritableLayer", "ssss", writableLayerMountPath, writableLayerFolderPath,
                   exportFolderPath, layerData);
}
WC_API HRESULT HcsDestroyLayer(PCWSTR layerPath) { return wc_call("HcsDestroyLayer", "s", layerPath); }
WC_API HRESULT HcsSetupBaseOSLayer(PCWSTR layerPath, HANDLE vhdHandle, PCWSTR options) {
    return wc_call("HcsSetupBaseOSLayer", "sxs", layerPath, vhdHandle, options);
}
WC_API HRESULT HcsSetupBaseOSVolume(PCWSTR layerPath, PCWSTR volumePath, PCWSTR options) {
    return wc_call("HcsSetupBaseOSVolume", "sss", layerPath, volumePath, options);
}
WC_API HRESULT HcsInitializeWritableLayer(PCWSTR writableLayerPath, PCWSTR layerData, PCWSTR options) {
    return wc_call("HcsInitializeWritableLayer", "sss", writableLayerPath, layerData, options);
}
WC_API HRESULT HcsInitializeLegacyWritableLayer(PCWSTR writableLayerMountPath, PCWSTR writableLayerFolderPath,
                                                PCWSTR layerData, PCWSTR options) {
    return wc_call("HcsInitializeLegacyWritableLayer", "ssss", writableLayerMountPath, writableLayerFolderPath,
                   layerData, options);
}
WC_API HRESULT HcsAttachLayerStorageFilter(PCWSTR layerPath, PCWSTR layerData) {
    return wc_call("HcsAttachLayerStorageFilter", "ss", layerPath, layerData);
}
WC_API HRESULT HcsDetachLayerStorageFilter(PCWSTR layerPath) {
    return wc_call("HcsDetachLayerStorageFilter", "s", layerPath);
}
WC_API HRESULT HcsFormatWritableLayerVhd(HANDLE vhdHandle) { return wc_call("HcsFormatWritableLayerVhd", "x", vhdHandle); }
WC_API HRESULT HcsGetLayerVhdMountPath(HANDLE vhdHandle, PWSTR *mountPath) {
    if (!mountPath) return E_POINTER;
    return wc_call("HcsGetLayerVhdMountPath", "xS", vhdHandle, mountPath);
}
