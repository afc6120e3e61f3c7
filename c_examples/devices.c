/* devices: the devices the library can run on, and why a GPU cannot be used when it
 * cannot. Device 0 is the CPU. */
#include <stdio.h>

#include "rocmforge.h"

int main(void) {
    size_t n = 0;
    rf_status s = rf_device_count(&n);
    if (s != RF_OK) {
        fprintf(stderr, "devices: %s: %s\n", rf_status_name(s), rf_last_error());
        return 1;
    }
    static const char *kinds[] = {"CPU", "HIP", "CUDA"};
    for (size_t i = 0; i < n; i++) {
        rf_device_description d = {sizeof d, 0, NULL, NULL, 0, 0, 0, 0, false, NULL};
        if ((s = rf_device_info(i, &d)) != RF_OK) {
            fprintf(stderr, "devices: %zu: %s: %s\n", i, rf_status_name(s), rf_last_error());
            return 1;
        }
        printf("%zu: %s %s (%s), %.1f GiB total, %.1f GiB free, %u compute units, warp %u: %s%s\n",
               i, d.kind < 3 ? kinds[d.kind] : "?", d.name, d.arch,
               (double)d.total_bytes / (1u << 30), (double)d.free_bytes / (1u << 30),
               d.compute_units, d.warp_size, d.usable ? "usable" : "unusable: ",
               d.usable ? "" : d.unusable_reason);
    }
    return 0;
}
