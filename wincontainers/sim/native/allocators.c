/* Simulated ole32.dll!CoTaskMemFree and kernel32.dll!LocalFree.
 *
 * Strings returned by the simulated HCS DLLs carry a tag saying which allocator owns them
 * (vmcompute and computenetwork: CoTaskMem; computecore and computestorage: LocalAlloc, per
 * Microsoft's docs). Freeing with the wrong one, or twice, is reported to the daemon, which
 * counts it per client: a binding that frees correctly shows 0 misuses.
 */
#include "wcsim.h"

#include <stdlib.h>

static void *tagged_free(void *p, uint64_t want, const char *wrong, const char *bad) {
    if (!p) return NULL;
    uint64_t *h = (uint64_t *)p - 2;
    if (h[0] == want) {
        h[0] = WC_TAG_FREED;
        free(h);
        return NULL;
    }
    if (h[0] == WC_TAG_COTASKMEM || h[0] == WC_TAG_LOCALMEM) {
        wc_report_misuse(wrong);
        h[0] = WC_TAG_FREED;
        free(h);
        return NULL;
    }
    wc_report_misuse(bad); /* double free or a foreign pointer: leave it alone */
    return p;
}

#ifdef WC_EXPORT_COTASKMEMFREE
WC_API void CoTaskMemFree(void *pv) {
    (void)tagged_free(pv, WC_TAG_COTASKMEM, "CoTaskMemFree on memory that needs LocalFree",
                      "CoTaskMemFree on a pointer that is not a live HCS string (double free?)");
}
#endif

#ifdef WC_EXPORT_LOCALFREE
WC_API HANDLE LocalFree(HANDLE hMem) {
    return tagged_free(hMem, WC_TAG_LOCALMEM, "LocalFree on memory that needs CoTaskMemFree",
                       "LocalFree on a pointer that is not a live HCS string (double free?)");
}
#endif
