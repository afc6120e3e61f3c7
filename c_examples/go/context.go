package rocmforge

/*
#include "rocmforge.h"

// Builds the batch on the C side: a Go-allocated rf_batch holding a pointer to Go memory
// would break cgo's pointer-passing rules.
static enum rf_status rfgo_decode(rf_context *ctx, const int32_t *tokens,
                                  const int32_t *seq_ids, size_t n) {
	rf_batch batch = {0};
	batch.n_tokens = n;
	batch.tokens = tokens;
	batch.seq_ids = seq_ids;
	return rf_decode(ctx, &batch);
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// KVType is how a context's KV cache stores K and V.
type KVType uint32

const (
	KVF16  KVType = C.RF_KV_F16
	KVF32  KVType = C.RF_KV_F32
	KVQ8_0 KVType = C.RF_KV_Q8_0 // 17/32 of F16's bytes
)

// ContextOptions are rf_context_params; start from DefaultContextOptions.
type ContextOptions struct {
	NCtx     uint32 // token slots across all sequences; 0 = min(training context, 4096)
	NSeqMax  uint32 // sequences the context holds (ids 0 .. NSeqMax-1)
	NBatch   uint32 // most tokens one Decode may take
	NThreads uint32 // threads for CPU work; 0 = the model's setting
	KVType   KVType
	// SWAFull keeps every position for sliding-window layers too (Gemma 3), so a sequence
	// can be rolled back any distance; by default they keep their window and NBatch more.
	SWAFull bool
}

// DefaultContextOptions are the library's defaults.
func DefaultContextOptions() ContextOptions {
	p := C.rf_context_default_params()
	return ContextOptions{
		NCtx: uint32(p.n_ctx), NSeqMax: uint32(p.n_seq_max),
		NBatch: uint32(p.n_batch), NThreads: uint32(p.n_threads), KVType: KVType(p.kv_type),
		SWAFull: bool(p.swa_full),
	}
}

// Context is a KV cache and working memory for one or more sequences of a model.
type Context struct {
	p *C.rf_context
}

// params is opts as rf_context_params.
func (opts ContextOptions) params() C.rf_context_params {
	params := C.rf_context_default_params()
	params.n_ctx = C.uint32_t(opts.NCtx)
	params.n_seq_max = C.uint32_t(opts.NSeqMax)
	params.n_batch = C.uint32_t(opts.NBatch)
	params.n_threads = C.uint32_t(opts.NThreads)
	params.kv_type = C.uint32_t(opts.KVType)
	params.swa_full = C.bool(opts.SWAFull)
	return params
}

// NewContext creates a context for m.
func NewContext(m *Model, opts ContextOptions) (*Context, error) {
	params := opts.params()
	c := &Context{}
	if err := check("rf_context_new", func() C.enum_rf_status {
		return C.rf_context_new(m.p, &params, &c.p)
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Close frees the context. Calling it again does nothing. It must not run concurrently
// with another method of c.
func (c *Context) Close() error {
	if c.p != nil {
		C.rf_context_free(c.p)
		c.p = nil
	}
	return nil
}

// Decode appends tokens to sequence 0 and computes the logits of the last one.
func (c *Context) Decode(tokens []int32) error {
	return check("rf_decode", func() C.enum_rf_status {
		return C.rfgo_decode(c.p, int32Ptr(tokens), nil, C.size_t(len(tokens)))
	})
}

// DecodeSeq is Decode on sequence seq.
func (c *Context) DecodeSeq(seq int32, tokens []int32) error {
	seqIDs := make([]int32, len(tokens))
	for i := range seqIDs {
		seqIDs[i] = seq
	}
	return check("rf_decode", func() C.enum_rf_status {
		return C.rfgo_decode(c.p, int32Ptr(tokens), int32Ptr(seqIDs), C.size_t(len(tokens)))
	})
}

// Logits copies the outputIndex-th row of logits of the last decode (-1: the last row).
func (c *Context) Logits(outputIndex int32) ([]float32, error) {
	var row *C.float
	var n C.size_t
	if err := check("rf_get_logits", func() C.enum_rf_status {
		return C.rf_get_logits(c.p, C.int32_t(outputIndex), &row, &n)
	}); err != nil {
		return nil, err
	}
	// The library's row lives only until the next decode: copy it.
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(row)), int(n))...), nil
}

// SeqRemove removes positions p0 .. p1 of sequence seq (p1 < 0: to the end).
func (c *Context) SeqRemove(seq, p0, p1 int32) error {
	return check("rf_seq_remove", func() C.enum_rf_status {
		return C.rf_seq_remove(c.p, C.int32_t(seq), C.int32_t(p0), C.int32_t(p1))
	})
}

// SeqShift moves positions p0 .. p1 of sequence seq (p1 < 0: to the end) by delta,
// re-rotating their keys, so a chat can drop its oldest turns with SeqRemove and go on
// without re-encoding the rest.
func (c *Context) SeqShift(seq, p0, p1, delta int32) error {
	return check("rf_seq_shift", func() C.enum_rf_status {
		return C.rf_seq_shift(c.p, C.int32_t(seq), C.int32_t(p0), C.int32_t(p1), C.int32_t(delta))
	})
}

// StateSave returns sequence seq's state (tokens, positions, K/V) as a checksummed blob
// that StateLoad reads back into a context of the same model.
func (c *Context) StateSave(seq int32) ([]byte, error) {
	var size C.size_t
	if err := check("rf_state_seq_size", func() C.enum_rf_status {
		return C.rf_state_seq_size(c.p, C.int32_t(seq), &size)
	}); err != nil {
		return nil, err
	}
	blob := make([]byte, int(size)) // never empty: a state has a header
	if err := check("rf_state_seq_save", func() C.enum_rf_status {
		return C.rf_state_seq_save(c.p, C.int32_t(seq), (*C.uint8_t)(unsafe.Pointer(&blob[0])), C.size_t(len(blob)), &size)
	}); err != nil {
		return nil, err
	}
	return blob[:int(size)], nil
}

// StateLoad replaces sequence seq with a blob from StateSave; the sequence's last
// token's logits are ready for sampling afterwards. A blob from another model, truncated
// or corrupted is ErrInvalidArgument, with the context unchanged.
func (c *Context) StateLoad(seq int32, blob []byte) error {
	if len(blob) == 0 {
		return check("rf_state_seq_load", func() C.enum_rf_status {
			return C.rf_state_seq_load(c.p, C.int32_t(seq), nil, 0)
		})
	}
	return check("rf_state_seq_load", func() C.enum_rf_status {
		return C.rf_state_seq_load(c.p, C.int32_t(seq), (*C.uint8_t)(unsafe.Pointer(&blob[0])), C.size_t(len(blob)))
	})
}

// Pooling picks what Embeddings combines.
type Pooling uint32

const (
	PoolingNone Pooling = C.RF_POOLING_NONE // one output's row: index is an output index (-1: the last)
	PoolingMean Pooling = C.RF_POOLING_MEAN // the mean over sequence index's tokens in the last batch
	PoolingCLS  Pooling = C.RF_POOLING_CLS  // sequence index's first token in the last batch
	PoolingLast Pooling = C.RF_POOLING_LAST // sequence index's last token in the last batch
)

// Embeddings returns an embedding of the last decode (the hidden state after the output
// norm), of one output or pooled over a sequence's tokens, which must have asked for
// logits; normalize scales it to unit length.
func (c *Context) Embeddings(index int32, pooling Pooling, normalize bool) ([]float32, error) {
	var n C.size_t
	out := make([]float32, 1024)
	for {
		err := check("rf_get_embeddings", func() C.enum_rf_status {
			return C.rf_get_embeddings(c.p, C.int32_t(index), C.uint32_t(pooling), C.bool(normalize),
				(*C.float)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &n)
		})
		if errors.Is(err, ErrBufferTooSmall) && int(n) > len(out) {
			out = make([]float32, int(n))
			continue
		}
		return out[:int(n)], err
	}
}

// SeqPosMax is the highest position sequence seq holds, or -1 when it is empty.
func (c *Context) SeqPosMax(seq int32) (int32, error) {
	var pos C.int32_t
	err := check("rf_seq_pos_max", func() C.enum_rf_status {
		return C.rf_seq_pos_max(c.p, C.int32_t(seq), &pos)
	})
	return int32(pos), err
}

// Cancel stops the call running on c with ErrCancelled (a request while none runs is
// dropped when the next call starts). It is safe from any goroutine. Generate does this itself when its context.Context is done.
func (c *Context) Cancel() error {
	return check("rf_context_cancel", func() C.enum_rf_status { return C.rf_context_cancel(c.p) })
}
