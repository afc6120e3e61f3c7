package rocmforge

/*
#include <stdbool.h>
#include <stddef.h>
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

// goTextCallback is the Go side of rf_generate's text callback (see rfgo_text).
//
//export goTextCallback
func goTextCallback(text *C.char, n C.size_t, userData unsafe.Pointer) C.bool {
	g := cgo.Handle(uintptr(userData)).Value().(*generation)
	return C.bool(g.text(C.GoStringN(text, C.int(n))))
}
