/* Simulated computenetwork.dll: HCN v2 networks, namespaces, endpoints and load balancers.
 * Synchronous calls; strings and error records are CoTaskMemAlloc'ed (ole32!CoTaskMemFree). */
#include "wcsim.h"

#define HCN_KIND(Kind, Plural, EnumName)                                                                   \
    WC_API HRESULT HcnEnumerate##EnumName(PCWSTR Query, PWSTR *Plural, PWSTR *ErrorRecord) {              \
        return wc_call("HcnEnumerate" #EnumName, "sSS", Query, Plural, ErrorRecord);                      \
    }                                                                                                     \
    WC_API HRESULT HcnOpen##Kind(const GUID *Id, HANDLE *Kind, PWSTR *ErrorRecord) {                      \
        if (!Kind) return E_POINTER;                                                                      \
        return wc_call("HcnOpen" #Kind, "gHS", Id, Kind, ErrorRecord);                                    \
    }                                                                                                     \
    WC_API HRESULT HcnModify##Kind(HANDLE Kind, PCWSTR Settings, PWSTR *ErrorRecord) {                    \
        return wc_call("HcnModify" #Kind, "hsS", Kind, Settings, ErrorRecord);                            \
    }                                                                                                     \
    WC_API HRESULT HcnQuery##Kind##Properties(HANDLE Kind, PCWSTR Query, PWSTR *Properties,               \
                                              PWSTR *ErrorRecord) {                                       \
        return wc_call("HcnQuery" #Kind "Properties", "hsSS", Kind, Query, Properties, ErrorRecord);      \
    }                                                                                                     \
    WC_API HRESULT HcnDelete##Kind(const GUID *Id, PWSTR *ErrorRecord) {                                  \
        return wc_call("HcnDelete" #Kind, "gS", Id, ErrorRecord);                                         \
    }                                                                                                     \
    WC_API HRESULT HcnClose##Kind(HANDLE Kind) {                                                          \
        HRESULT hr = wc_call("HcnClose" #Kind, "h", Kind);                                                \
        if (hr >= 0) wc_forget_handle(wc_handle_id(Kind));                                                \
        return hr;                                                                                        \
    }

HCN_KIND(Network, Networks, Networks)
HCN_KIND(Namespace, Namespaces, Namespaces)
HCN_KIND(Endpoint, Endpoints, Endpoints)
HCN_KIND(LoadBalancer, LoadBalancer, LoadBalancers)

WC_API HRESULT HcnCreateNetwork(const GUID *Id, PCWSTR Settings, HANDLE *Network, PWSTR *ErrorRecord) {
    if (!Network) return E_POINTER;
    return wc_call("HcnCreateNetwork", "gsHS", Id, Settings, Network, ErrorRecord);
}
WC_API HRESULT HcnCreateNamespace(const GUID *Id, PCWSTR Settings, HANDLE *Namespace, PWSTR *ErrorRecord) {
    if (!Namespace) return E_POINTER;
    return wc_call("HcnCreateNamespace", "gsHS", Id, Settings, Namespace, ErrorRecord);
}
WC_API HRESULT HcnCreateEndpoint(HANDLE Network, const GUID *Id, PCWSTR Settings, HANDLE *Endpoint,
                                 PWSTR *ErrorRecord) {
    if (!Endpoint) return E_POINTER;
    return wc_call("HcnCreateEndpoint", "hgsHS", Network, Id, Settings, Endpoint, ErrorRecord);
}
WC_API HRESULT HcnCreateLoadBalancer(const GUID *Id, PCWSTR Settings, HANDLE *LoadBalancer, PWSTR *ErrorRecord) {
    if (!LoadBalancer) return E_POINTER;
    return wc_call("HcnCreateLoadBalancer", "gsHS", Id, Settings, LoadBalancer, ErrorRecord);
}
WC_API HRESULT HcnRegisterServiceCallback(HCN_NOTIFICATION_CALLBACK Callback, void *Context, HANDLE *CallbackHandle) {
    if (!Callback || !CallbackHandle) return E_POINTER;
    UINT64 reg = 0;
    HRESULT hr = wc_call("HcnRegisterServiceCallback", "Q", &reg);
    if (hr < 0) return hr;
    wc_register_hcn(Callback, Context, reg);
    *CallbackHandle = wc_handle_value(reg);
    return hr;
}
WC_API HRESULT HcnUnregisterServiceCallback(HANDLE CallbackHandle) {
    HRESULT hr = wc_call("HcnUnregisterServiceCallback", "h", CallbackHandle);
    if (hr >= 0) wc_forget_handle(wc_handle_id(CallbackHandle));
    return hr;
}
