// Package rocmforge runs GGUF language models through librocmforge's C ABI.
//
// Every object holds C memory: call Close when done with it (Close is idempotent; there
// are no finalizers). A Model may be shared by any number of goroutines; a Context or a
// Sampler is used by one goroutine at a time, except that Context.Cancel may be called from
// anywhere.
//
// Failures are *Error values. Their Status also works as a sentinel with errors.Is:
//
//	if errors.Is(err, rocmforge.ErrCancelled) { ... }
//
// Building: cgo finds the installed library through pkg-config (`#cgo pkg-config:
// rocmforge`), so install it first (scripts/install.sh --prefix DIR in the repository) and
// point PKG_CONFIG_PATH at DIR/lib/pkgconfig when DIR is not a system prefix. A program
// run from such a prefix finds the library through an RPATH or LD_LIBRARY_PATH:
//
//	export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
//	export CGO_LDFLAGS="-Wl,-rpath,$HOME/.local/lib"
//
// To build against a local checkout instead of a published version, add to your go.mod:
//
//	require github.com/rocmforge/rocmforge/c_examples/go v0.0.0
//	replace github.com/rocmforge/rocmforge/c_examples/go => /path/to/rocmforge/c_examples/go
package rocmforge

/*
#cgo pkg-config: rocmforge
#include "rocmforge.h"
*/
import "C"

import (
	"errors"
	"runtime"
	"unsafe"
)

// Status is an rf_status code. The non-OK values are error sentinels for errors.Is.
type Status int32

// The library's status codes (values fixed by the ABI).
const (
	ErrInvalidArgument   Status = C.RF_ERR_INVALID_ARGUMENT
	ErrIO                Status = C.RF_ERR_IO
	ErrInvalidModel      Status = C.RF_ERR_INVALID_MODEL
	ErrUnsupported       Status = C.RF_ERR_UNSUPPORTED
	ErrOutOfMemory       Status = C.RF_ERR_OUT_OF_MEMORY
	ErrDeviceOutOfMemory Status = C.RF_ERR_DEVICE_OUT_OF_MEMORY
	ErrDevice            Status = C.RF_ERR_DEVICE
	ErrDeviceLost        Status = C.RF_ERR_DEVICE_LOST
	ErrContextFull       Status = C.RF_ERR_CONTEXT_FULL
	ErrCancelled         Status = C.RF_ERR_CANCELLED
	ErrBufferTooSmall    Status = C.RF_ERR_BUFFER_TOO_SMALL
	ErrBusy              Status = C.RF_ERR_BUSY
	ErrPanic             Status = C.RF_ERR_PANIC
)

// Error returns the code's name, e.g. "RF_ERR_IO".
func (s Status) Error() string { return C.GoString(C.rf_status_name(C.int32_t(s))) }

// Error is a failed library call.
type Error struct {
	Op     string // the C function, e.g. "rf_model_load"
	Status Status
	Msg    string // rf_last_error(): what failed and where

	ctxErr error // the context.Context error behind a cancellation, if any
}

func (e *Error) Error() string { return e.Op + ": " + e.Status.Error() + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrCancelled) and the like work.
func (e *Error) Unwrap() error { return e.Status }

// Is also matches the context error (context.Canceled, context.DeadlineExceeded) when a
// Go context's cancellation caused the error; Go 1.19 has no multi-error Unwrap.
func (e *Error) Is(target error) bool { return e.ctxErr != nil && errors.Is(e.ctxErr, target) }

// Version is the library's "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.rf_version()) }

// ABIVersion is the C ABI of the library loaded at run time, the N of its soname
// librocmforge.so.N. It equals the ABI the package was built against (the header's
// RF_ABI_VERSION), since the dynamic loader only finds librocmforge.so.N.
func ABIVersion() uint32 { return uint32(C.rf_abi_version()) }

// check runs one C call and turns a failure into an *Error.
func check(op string, call func() C.enum_rf_status) error {
	// rf_last_error is per OS thread; without the lock the goroutine could move to another
	// thread between the call and the read.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if s := call(); s != C.RF_OK {
		return &Error{Op: op, Status: Status(s), Msg: C.GoString(C.rf_last_error())}
	}
	return nil
}

// readBuffer implements the caller-buffer protocol: offer buf; on RF_ERR_BUFFER_TOO_SMALL
// the library says how much it needs, so grow and call again.
func readBuffer[T any](op string, buf []T, call func(p unsafe.Pointer, capacity C.size_t, n *C.size_t) C.enum_rf_status) ([]T, error) {
	for {
		var n C.size_t
		err := check(op, func() C.enum_rf_status {
			var p unsafe.Pointer
			if len(buf) > 0 {
				p = unsafe.Pointer(&buf[0])
			}
			return call(p, C.size_t(len(buf)), &n)
		})
		if err == nil {
			return buf[:n], nil
		}
		// A need no larger than the offer would loop forever; report it instead.
		if !errors.Is(err, ErrBufferTooSmall) || int(n) <= len(buf) {
			return nil, err
		}
		buf = make([]T, n)
	}
}

// goBytes gives s as (ptr, len) for the duration of one C call. Go 1.19 has no
// unsafe.StringData, and a string's bytes must not be handed out as writable anyway.
func goBytes(s string) (*C.char, C.size_t) {
	if s == "" {
		return nil, 0
	}
	b := []byte(s)
	return (*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// int32Ptr is the C view of a []int32 for one call; NULL when empty.
func int32Ptr(v []int32) *C.int32_t {
	if len(v) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(&v[0]))
}
