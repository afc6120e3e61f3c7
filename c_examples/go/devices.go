package rocmforge

/*
#include "rocmforge.h"
*/
import "C"

// DeviceKind says what runs a device's work.
type DeviceKind uint32

// The kinds of device (values fixed by the ABI).
const (
	DeviceKindCPU  DeviceKind = C.RF_DEVICE_KIND_CPU
	DeviceKindHIP  DeviceKind = C.RF_DEVICE_KIND_HIP
	DeviceKindCUDA DeviceKind = C.RF_DEVICE_KIND_CUDA
)

// Device is one entry of the library's device list; its index is what
// ModelOptions.Device takes. Device 0 is the CPU.
type Device struct {
	Index          int
	Kind           DeviceKind
	Name           string
	Arch           string // gfx90a, sm_90, or the CPU's instruction set (x86_64+avx2)
	TotalBytes     uint64
	FreeBytes      uint64
	ComputeUnits   uint32 // multiprocessors, compute units, or CPU cores
	WarpSize       uint32 // 32 or 64; 1 for the CPU
	Usable         bool
	UnusableReason string // empty when Usable
}

// Devices lists the devices the library can run models on, the CPU first.
func Devices() ([]Device, error) {
	var n C.size_t
	if err := check("rf_device_count", func() C.enum_rf_status { return C.rf_device_count(&n) }); err != nil {
		return nil, err
	}
	devices := make([]Device, 0, int(n))
	for i := 0; i < int(n); i++ {
		var d C.rf_device_description
		d.struct_size = C.sizeof_rf_device_description
		if err := check("rf_device_info", func() C.enum_rf_status {
			return C.rf_device_info(C.size_t(i), &d)
		}); err != nil {
			return nil, err
		}
		devices = append(devices, Device{
			Index: i, Kind: DeviceKind(d.kind), Name: C.GoString(d.name), Arch: C.GoString(d.arch),
			TotalBytes: uint64(d.total_bytes), FreeBytes: uint64(d.free_bytes),
			ComputeUnits: uint32(d.compute_units), WarpSize: uint32(d.warp_size),
			Usable: bool(d.usable), UnusableReason: C.GoString(d.unusable_reason),
		})
	}
	return devices, nil
}
