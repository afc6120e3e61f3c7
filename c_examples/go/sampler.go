package rocmforge

/*
#include <stdlib.h>
#include "rocmforge.h"
*/
import "C"

import "unsafe"

// GrammarKind says what language SamplerOptions.Grammar is written in.
type GrammarKind uint32

const (
	GrammarNone       GrammarKind = C.RF_GRAMMAR_NONE
	GrammarJSONSchema GrammarKind = C.RF_GRAMMAR_JSON_SCHEMA // output is JSON valid against it
	GrammarRegex      GrammarKind = C.RF_GRAMMAR_REGEX       // the whole output matches it
	GrammarLark       GrammarKind = C.RF_GRAMMAR_LARK        // llguidance's Lark-style grammar
)

// SamplerOptions are rf_sampler_params; start from DefaultSamplerOptions.
type SamplerOptions struct {
	Temperature      float32 // 0 = greedy
	TopK             uint32  // 0 = off
	TopP             float32 // 1 = off
	MinP             float32 // 0 = off
	RepeatPenalty    float32 // 1 = off
	RepeatLastN      uint32  // recent tokens the penalties see; 0 = off
	FrequencyPenalty float32
	PresencePenalty  float32
	Seed             uint64 // the same seed and logits give the same tokens
	// Draws only tokens that keep the output inside Grammar (llguidance); an invalid
	// grammar makes NewSampler fail with llguidance's message.
	GrammarKind GrammarKind
	Grammar     string
}

// DefaultSamplerOptions are the library's defaults.
func DefaultSamplerOptions() SamplerOptions {
	p := C.rf_sampler_default_params()
	return SamplerOptions{
		Temperature: float32(p.temperature), TopK: uint32(p.top_k), TopP: float32(p.top_p),
		MinP: float32(p.min_p), RepeatPenalty: float32(p.repeat_penalty),
		RepeatLastN: uint32(p.repeat_last_n), FrequencyPenalty: float32(p.frequency_penalty),
		PresencePenalty: float32(p.presence_penalty), Seed: uint64(p.seed),
	}
}

// Sampler picks tokens from a context's logits.
type Sampler struct {
	p *C.rf_sampler
}

// NewSampler creates a sampler.
func NewSampler(opts SamplerOptions) (*Sampler, error) {
	params := C.rf_sampler_default_params()
	params.temperature = C.float(opts.Temperature)
	params.top_k = C.uint32_t(opts.TopK)
	params.top_p = C.float(opts.TopP)
	params.min_p = C.float(opts.MinP)
	params.repeat_penalty = C.float(opts.RepeatPenalty)
	params.repeat_last_n = C.uint32_t(opts.RepeatLastN)
	params.frequency_penalty = C.float(opts.FrequencyPenalty)
	params.presence_penalty = C.float(opts.PresencePenalty)
	params.seed = C.uint64_t(opts.Seed)
	params.grammar_kind = C.uint32_t(opts.GrammarKind)
	if opts.GrammarKind != GrammarNone {
		// C memory: cgo forbids passing C a struct that holds a Go pointer.
		grammar := C.CString(opts.Grammar)
		defer C.free(unsafe.Pointer(grammar))
		params.grammar = grammar
		params.grammar_len = C.size_t(len(opts.Grammar))
	}
	s := &Sampler{}
	if err := check("rf_sampler_new", func() C.enum_rf_status {
		return C.rf_sampler_new(&params, &s.p)
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// NewGreedySampler creates a sampler that always picks the most likely token.
func NewGreedySampler() (*Sampler, error) {
	opts := DefaultSamplerOptions()
	opts.Temperature = 0
	return NewSampler(opts)
}

// Close frees the sampler. Calling it again does nothing.
func (s *Sampler) Close() error {
	if s.p != nil {
		C.rf_sampler_free(s.p)
		s.p = nil
	}
	return nil
}

// Sample draws a token from the outputIndex-th logits row of c's last decode (-1: the
// last) and remembers it for the repetition penalties.
func (s *Sampler) Sample(c *Context, outputIndex int32) (int32, error) {
	var token C.int32_t
	err := check("rf_sampler_sample", func() C.enum_rf_status {
		return C.rf_sampler_sample(s.p, c.p, C.int32_t(outputIndex), &token)
	})
	return int32(token), err
}

// Reset forgets the remembered tokens and restarts the random sequence.
func (s *Sampler) Reset() error {
	return check("rf_sampler_reset", func() C.enum_rf_status { return C.rf_sampler_reset(s.p) })
}
