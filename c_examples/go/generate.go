package rocmforge

/*
#include <stdint.h>
#include <stdlib.h>
#include "rocmforge.h"

// goTextCallback is exported by callback.go.
extern _Bool goTextCallback(char *text, size_t len, void *user_data);

// The rf_text_callback: forwards to Go with the exact C signature.
static bool rfgo_text(const char *text, size_t len, void *user_data) {
	return goTextCallback((char *)text, len, user_data);
}

// The cgo.Handle travels as an integer and becomes user_data only here, in C: no Go
// pointer is ever stored on the C side.
static enum rf_status rfgo_generate(rf_context *ctx, rf_sampler *sampler, const char *prompt,
                                    size_t len, const rf_generate_params *params,
                                    uintptr_t handle) {
	return rf_generate(ctx, sampler, prompt, len, params, rfgo_text, (void *)handle);
}

static enum rf_status rfgo_generate_chat(rf_context *ctx, rf_sampler *sampler,
                                         const rf_chat_message *messages, size_t n,
                                         bool add_assistant, const rf_generate_params *params,
                                         uintptr_t handle) {
	return rf_generate_chat(ctx, sampler, messages, n, add_assistant, params, rfgo_text,
	                        (void *)handle);
}
*/
import "C"

import (
	"context"
	"errors"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// GenerateOptions are rf_generate_params; start from DefaultGenerateOptions.
type GenerateOptions struct {
	MaxTokens    uint32
	Stop         []string // generation stops before the first of these; it is not passed on
	SeqID        int32    // the sequence the prompt continues (its cached tokens stay)
	AddSpecial   bool     // add BOS/EOS to the prompt as the model says
	ParseSpecial bool     // control tokens written in the prompt become their ids
}

// DefaultGenerateOptions are the library's defaults.
func DefaultGenerateOptions() GenerateOptions {
	p := C.rf_generate_default_params()
	return GenerateOptions{
		MaxTokens: uint32(p.max_tokens), SeqID: int32(p.seq_id),
		AddSpecial: bool(p.add_special), ParseSpecial: bool(p.parse_special),
	}
}

// generation is what the C callback reaches through its cgo.Handle.
type generation struct {
	ctx         context.Context
	onText      func(string) bool
	stoppedByGo bool // the callback refused text because ctx was done
	panicked    bool
	panicValue  any
}

// text runs onText for the C callback. A panic must not unwind through the library's
// frames (it would skip its cleanup and leave the context locked): it is recovered here,
// stops generation, and is raised again once rf_generate has returned.
func (g *generation) text(s string) (more bool) {
	if g.ctx.Err() != nil {
		g.stoppedByGo = true
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			g.panicked, g.panicValue, more = true, r, false
		}
	}()
	return g.onText(s)
}

// Generate continues prompt on sequence opts.SeqID of c, passing whole UTF-8 characters to
// onText as they complete; onText returns false to stop early (not an error). It stops at
// an end-of-generation token, a stop string or opts.MaxTokens.
//
// When ctx is done, the running call is cancelled through rf_context_cancel (which also
// interrupts a long prompt) and Generate returns an *Error for which both
// errors.Is(err, ErrCancelled) and errors.Is(err, ctx.Err()) hold; if the generation had
// already finished, Generate returns nil. The context stays usable; the tokens decoded so
// far stay in its KV cache.
//
// onText runs on the calling goroutine; it must not call runtime.Goexit (t.FailNow).
func Generate(ctx context.Context, c *Context, s *Sampler, prompt string, opts GenerateOptions, onText func(string) bool) error {
	p, n := goBytes(prompt)
	return runGenerate(ctx, c, "rf_generate", opts, onText,
		func(params *C.rf_generate_params, h C.uintptr_t) C.enum_rf_status {
			return C.rfgo_generate(c.p, s.p, p, n, params, h)
		})
}

// GenerateChat is Generate from chat messages rendered with the model's template, with
// the messages kept plain text as ChatTokenize keeps them (opts.ParseSpecial does not
// apply); addAssistant ends the conversation with the opening of an assistant turn.
func GenerateChat(ctx context.Context, c *Context, s *Sampler, messages []ChatMessage, addAssistant bool, opts GenerateOptions, onText func(string) bool) error {
	base, _, free, err := cMessages("rf_generate_chat", messages)
	if err != nil {
		return err
	}
	defer free()
	return runGenerate(ctx, c, "rf_generate_chat", opts, onText,
		func(params *C.rf_generate_params, h C.uintptr_t) C.enum_rf_status {
			return C.rfgo_generate_chat(c.p, s.p, base, C.size_t(len(messages)),
				C.bool(addAssistant), params, h)
		})
}

// runGenerate runs start (rf_generate or rf_generate_chat through its C shim) as Generate
// describes.
func runGenerate(ctx context.Context, c *Context, op string, opts GenerateOptions, onText func(string) bool,
	start func(params *C.rf_generate_params, h C.uintptr_t) C.enum_rf_status) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Status: ErrCancelled, Msg: "not started: " + err.Error(), ctxErr: err}
	}
	params := C.rf_generate_default_params()
	params.max_tokens = C.uint32_t(opts.MaxTokens)
	params.seq_id = C.int32_t(opts.SeqID)
	params.add_special = C.bool(opts.AddSpecial)
	params.parse_special = C.bool(opts.ParseSpecial)
	if len(opts.Stop) > 0 {
		// An array of pointers: it and the strings live in C memory (cgo's pointer rules).
		stop := (*C.rf_string)(C.calloc(C.size_t(len(opts.Stop)), C.sizeof_rf_string))
		if stop == nil {
			return &Error{Op: op, Status: ErrOutOfMemory, Msg: "calloc failed"}
		}
		defer C.free(unsafe.Pointer(stop))
		stops := unsafe.Slice(stop, len(opts.Stop))
		for i, str := range opts.Stop {
			data := C.CString(str)
			defer C.free(unsafe.Pointer(data))
			stops[i] = C.rf_string{data: data, len: C.size_t(len(str))}
		}
		params.stop, params.n_stop = stop, C.size_t(len(opts.Stop))
	}

	g := &generation{ctx: ctx, onText: onText}
	h := cgo.NewHandle(g)
	defer h.Delete()

	// Watch ctx from another goroutine: rf_context_cancel is the one call allowed from any
	// thread, and unlike onText it also stops a long prompt. Cancelling only while
	// rf_generate runs (under mu) keeps a cancel from reaching the next call; one that
	// lands after the last decode is dropped by the library when the next call starts.
	var (
		mu      sync.Mutex
		running = true
		finish  = make(chan struct{})
		watched = make(chan struct{})
	)
	if done := ctx.Done(); done != nil {
		go func() {
			defer close(watched)
			select {
			case <-done:
				mu.Lock()
				if running {
					C.rf_context_cancel(c.p)
				}
				mu.Unlock()
			case <-finish:
			}
		}()
	} else {
		close(watched)
	}

	err := check(op, func() C.enum_rf_status {
		return start(&params, C.uintptr_t(h))
	})
	mu.Lock()
	running = false
	mu.Unlock()
	close(finish)
	<-watched

	if g.panicked {
		panic(g.panicValue)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && (g.stoppedByGo || errors.Is(err, ErrCancelled)) {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Op: op, Status: ErrCancelled, Msg: "stopped: " + ctxErr.Error()}
		}
		e.ctxErr = ctxErr
		return e
	}
	return err
}
