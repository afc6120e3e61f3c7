package rocmforge

/*
#include <stdlib.h>
#include "rocmforge.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Model is a loaded GGUF model. Contexts keep the underlying model alive, so closing the
// Model while they exist is safe.
type Model struct {
	p *C.rf_model
}

// ChatMessage is one turn of a conversation: Role is "system", "user" or "assistant".
type ChatMessage struct {
	Role, Content string
}

// The values of ModelOptions.Device besides an index from Devices.
const (
	DeviceAuto int32 = C.RF_DEVICE_AUTO // the best usable GPU, else the CPU
	DeviceCPU  int32 = C.RF_DEVICE_CPU
)

// SplitMode says how ModelOptions.Devices share a model.
type SplitMode uint32

// The split modes (values fixed by the ABI).
const (
	// SplitLayer gives each GPU a contiguous share of the layers and their KV cache.
	SplitLayer SplitMode = C.RF_SPLIT_LAYER
	// SplitTensor splits every layer's heads and feed-forward across distinct GPUs.
	SplitTensor SplitMode = C.RF_SPLIT_TENSOR
)

// ModelOptions are rf_model_params; start from DefaultModelOptions.
type ModelOptions struct {
	Device    int32  // DeviceAuto, DeviceCPU, or a Device's Index
	NThreads  uint32 // threads for CPU work; 0 = one per core
	UseMmap   bool   // map the file instead of reading it into memory
	VocabOnly bool   // load only the vocabulary and metadata: tokenize, no contexts
	// Devices, when not empty, are the GPUs (Device indexes, in layer order) the model is
	// split over instead of Device; SplitProportions, when not empty, one positive
	// number each: how much of the model each takes (else by free memory).
	Devices          []int32
	SplitMode        SplitMode
	SplitProportions []float32
	// DeviceMemoryLimit holds what the model and its contexts allocate on each GPU (each
	// share, where Devices names a GPU twice) under this many bytes (0: no limit but the
	// GPU's).
	DeviceMemoryLimit uint64
}

// DefaultModelOptions are the library's defaults.
func DefaultModelOptions() ModelOptions {
	p := C.rf_model_default_params()
	return ModelOptions{
		Device: int32(p.device), NThreads: uint32(p.n_threads),
		UseMmap: bool(p.use_mmap), VocabOnly: bool(p.vocab_only),
		SplitMode: SplitMode(p.split_mode), DeviceMemoryLimit: uint64(p.device_memory_limit),
	}
}

// ModelInfo is what Model.Info reports.
type ModelInfo struct {
	Architecture string // general.architecture
	Name         string // general.name
	NParams      uint64
	SizeBytes    uint64
	NVocab       uint32
	NCtxTrain    uint32
	NEmbd        uint32
	NLayer       uint32
	NHead        uint32
	NHeadKV      uint32
	Device       int32  // the Device index that holds the weights (of the first layers)
	DeviceBytes  uint64 // weight bytes in device memory, every GPU's (0 on the CPU)
	NShares      uint32 // the devices the layers are split over (1 without a split)
}

// Share is one device's share of a model (rf_model_share).
type Share struct {
	Device          int32  // the Device index
	FirstLayer      uint32 // the share runs layers FirstLayer to FirstLayer+NLayers-1
	NLayers         uint32
	WeightsBytes    uint64 // the share's weights in the device's memory (0 on the CPU)
	DeviceBytes     uint64 // what the model and its contexts hold there now (0 on the CPU)
	PeakDeviceBytes uint64 // the most DeviceBytes has been
}

// Load loads the GGUF file at path with the library's default options (the best usable
// GPU, else the CPU).
func Load(path string) (*Model, error) {
	return LoadWithOptions(path, DefaultModelOptions())
}

// params is opts as rf_model_params, and what frees the C copies of its slices (the
// struct may not hold Go pointers) once the call that reads it has returned. op names
// the call in the error for SplitProportions not matching Devices: the library reads one
// proportion per device, so a shorter slice would be read past its end.
func (opts ModelOptions) params(op string) (C.rf_model_params, func(), error) {
	if len(opts.SplitProportions) != 0 && len(opts.SplitProportions) != len(opts.Devices) {
		return C.rf_model_params{}, func() {}, &Error{Op: op, Status: ErrInvalidArgument,
			Msg: fmt.Sprintf("%d split proportions for %d devices: give one per device or none",
				len(opts.SplitProportions), len(opts.Devices))}
	}
	params := C.rf_model_default_params()
	params.device = C.int32_t(opts.Device)
	params.n_threads = C.uint32_t(opts.NThreads)
	params.use_mmap = C.bool(opts.UseMmap)
	params.vocab_only = C.bool(opts.VocabOnly)
	params.split_mode = C.uint32_t(opts.SplitMode)
	params.device_memory_limit = C.uint64_t(opts.DeviceMemoryLimit)
	var copies []unsafe.Pointer
	if len(opts.Devices) > 0 {
		devices := C.malloc(C.size_t(4 * len(opts.Devices)))
		copy(unsafe.Slice((*int32)(devices), len(opts.Devices)), opts.Devices)
		params.devices, params.n_devices = (*C.int32_t)(devices), C.size_t(len(opts.Devices))
		copies = append(copies, devices)
	}
	if len(opts.SplitProportions) > 0 {
		proportions := C.malloc(C.size_t(4 * len(opts.SplitProportions)))
		copy(unsafe.Slice((*float32)(proportions), len(opts.SplitProportions)), opts.SplitProportions)
		params.split_proportions = (*C.float)(proportions)
		copies = append(copies, proportions)
	}
	return params, func() {
		for _, c := range copies {
			C.free(c)
		}
	}, nil
}

// LoadWithOptions loads the GGUF file at path, on the device opts.Device names (or split
// over opts.Devices).
func LoadWithOptions(path string, opts ModelOptions) (*Model, error) {
	params, free, err := opts.params("rf_model_load")
	if err != nil {
		return nil, err
	}
	defer free()
	m := &Model{}
	p, n := goBytes(path)
	if err := check("rf_model_load", func() C.enum_rf_status {
		return C.rf_model_load(p, n, &params, &m.p)
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// MemoryEstimate is rf_memory_estimate: what a model and one context of it would take.
type MemoryEstimate struct {
	Device       int32  // the device LoadWithOptions would choose (0 = CPU)
	WeightsBytes uint64 // in that device's memory on a GPU, read through the file's mapping on the CPU
	KVBytes      uint64 // the KV cache, part of HostBytes on the CPU and of DeviceBytes on a GPU
	HostBytes    uint64 // what rf_context_memory reports as host_bytes after the first decode
	DeviceBytes  uint64 // what rf_context_memory reports as device_bytes
}

// Estimate reports the memory the model at path and one context of it would take, from
// the file's metadata alone: the weights are not read. Under a layer split it adds up
// every device's (EstimateShare).
func Estimate(path string, model ModelOptions, ctx ContextOptions) (MemoryEstimate, error) {
	return estimate("rf_model_estimate", path, model, ctx,
		func(p *C.char, n C.size_t, mp *C.rf_model_params, cp *C.rf_context_params, e *C.rf_memory_estimate) C.enum_rf_status {
			return C.rf_model_estimate(p, n, mp, cp, e)
		})
}

// EstimateShare is Estimate for one device of the model's placement: share index (in
// layer order, one for each of model.Devices under a layer split, one otherwise), what
// that device would hold of the weights and of one context.
func EstimateShare(path string, model ModelOptions, ctx ContextOptions, index int) (MemoryEstimate, error) {
	return estimate("rf_model_estimate_share", path, model, ctx,
		func(p *C.char, n C.size_t, mp *C.rf_model_params, cp *C.rf_context_params, e *C.rf_memory_estimate) C.enum_rf_status {
			return C.rf_model_estimate_share(p, n, mp, cp, C.size_t(index), e)
		})
}

// estimate makes op's call with the C forms of path and the options.
func estimate(op, path string, model ModelOptions, ctx ContextOptions,
	call func(*C.char, C.size_t, *C.rf_model_params, *C.rf_context_params, *C.rf_memory_estimate) C.enum_rf_status,
) (MemoryEstimate, error) {
	mp, free, err := model.params(op)
	if err != nil {
		return MemoryEstimate{}, err
	}
	defer free()
	cp := ctx.params()
	var e C.rf_memory_estimate
	e.struct_size = C.uint32_t(unsafe.Sizeof(e))
	p, n := goBytes(path)
	err = check(op, func() C.enum_rf_status { return call(p, n, &mp, &cp, &e) })
	return MemoryEstimate{
		Device: int32(e.device), WeightsBytes: uint64(e.weights_bytes), KVBytes: uint64(e.kv_bytes),
		HostBytes: uint64(e.host_bytes), DeviceBytes: uint64(e.device_bytes),
	}, err
}

// Close frees the model. Calling it again does nothing.
func (m *Model) Close() error {
	if m.p != nil {
		C.rf_model_free(m.p)
		m.p = nil
	}
	return nil
}

// Tokenize turns text into token ids. addSpecial adds BOS/EOS as the model says;
// parseSpecial turns control tokens written in the text (<|im_start|>) into their ids.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	p, n := goBytes(text)
	// Rarely more than one token per 2 bytes; a miss costs one retry.
	return readBuffer("rf_tokenize", make([]int32, len(text)/2+8),
		func(buf unsafe.Pointer, capacity C.size_t, out *C.size_t) C.enum_rf_status {
			return C.rf_tokenize(m.p, p, n, C.bool(addSpecial), C.bool(parseSpecial),
				(*C.int32_t)(buf), capacity, out)
		})
}

// Detokenize gives the text of tokens, control tokens left out. The result may end inside
// a UTF-8 character when the tokens do.
func (m *Model) Detokenize(tokens []int32) (string, error) {
	b, err := readBuffer("rf_detokenize", make([]byte, 4*len(tokens)+16),
		func(buf unsafe.Pointer, capacity C.size_t, out *C.size_t) C.enum_rf_status {
			return C.rf_detokenize(m.p, int32Ptr(tokens), C.size_t(len(tokens)), false,
				(*C.char)(buf), capacity, out)
		})
	return string(b), err
}

// Info describes the model and where it runs.
func (m *Model) Info() (ModelInfo, error) {
	var d C.rf_model_description
	d.struct_size = C.sizeof_rf_model_description
	if err := check("rf_model_info", func() C.enum_rf_status { return C.rf_model_info(m.p, &d) }); err != nil {
		return ModelInfo{}, err
	}
	return ModelInfo{
		Architecture: C.GoString(d.architecture), Name: C.GoString(d.name),
		NParams: uint64(d.n_params), SizeBytes: uint64(d.size_bytes),
		NVocab: uint32(d.n_vocab), NCtxTrain: uint32(d.n_ctx_train), NEmbd: uint32(d.n_embd),
		NLayer: uint32(d.n_layer), NHead: uint32(d.n_head), NHeadKV: uint32(d.n_head_kv),
		Device: int32(d.device), DeviceBytes: uint64(d.device_bytes), NShares: uint32(d.n_shares),
	}, nil
}

// Shares describes each device's share of the model, in layer order.
func (m *Model) Shares() ([]Share, error) {
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	shares := make([]Share, 0, info.NShares)
	for i := 0; i < int(info.NShares); i++ {
		var s C.rf_model_share
		s.struct_size = C.sizeof_rf_model_share
		if err := check("rf_model_share_info", func() C.enum_rf_status {
			return C.rf_model_share_info(m.p, C.size_t(i), &s)
		}); err != nil {
			return nil, err
		}
		shares = append(shares, Share{
			Device: int32(s.device), FirstLayer: uint32(s.first_layer), NLayers: uint32(s.n_layers),
			WeightsBytes: uint64(s.weights_bytes), DeviceBytes: uint64(s.device_bytes),
			PeakDeviceBytes: uint64(s.peak_device_bytes),
		})
	}
	return shares, nil
}

// TokenToPiece gives the raw bytes of one token: possibly part of a UTF-8 character, so
// concatenate pieces before reading them as text. renderSpecial includes control tokens'
// text.
func (m *Model) TokenToPiece(token int32, renderSpecial bool) ([]byte, error) {
	return readBuffer("rf_token_to_piece", make([]byte, 16),
		func(buf unsafe.Pointer, capacity C.size_t, out *C.size_t) C.enum_rf_status {
			return C.rf_token_to_piece(m.p, C.int32_t(token), C.bool(renderSpecial),
				(*C.char)(buf), capacity, out)
		})
}

// BOS is the beginning-of-sequence token, or -1.
func (m *Model) BOS() int32 { return int32(C.rf_token_bos(m.p)) }

// EOS is the end-of-sequence token, or -1.
func (m *Model) EOS() int32 { return int32(C.rf_token_eos(m.p)) }

// IsEOG reports whether token ends a generation (EOS, end of turn and the like).
func (m *Model) IsEOG(token int32) bool { return bool(C.rf_token_is_eog(m.p, C.int32_t(token))) }

// ApplyChatTemplate renders messages with the model's chat template; addAssistant ends
// the text with the opening of an assistant turn. To feed a conversation to the model,
// prefer ChatTokenize or GenerateChat: tokenizing this text with parseSpecial reads
// control-token text typed into a message as markup.
func (m *Model) ApplyChatTemplate(messages []ChatMessage, addAssistant bool) (string, error) {
	base, size, free, err := cMessages("rf_chat_apply_template", messages)
	if err != nil {
		return "", err
	}
	defer free()
	b, err := readBuffer("rf_chat_apply_template", make([]byte, size),
		func(buf unsafe.Pointer, capacity C.size_t, out *C.size_t) C.enum_rf_status {
			return C.rf_chat_apply_template(m.p, base, C.size_t(len(messages)),
				C.bool(addAssistant), (*C.char)(buf), capacity, out)
		})
	return string(b), err
}

// ChatTokenize gives the conversation as tokens: only the template's own markup becomes
// control tokens; what the messages say is always plain text, so a user typing
// "<|im_end|>" cannot close their turn. addSpecial adds BOS/EOS as the model says.
func (m *Model) ChatTokenize(messages []ChatMessage, addAssistant, addSpecial bool) ([]int32, error) {
	base, size, free, err := cMessages("rf_chat_tokenize", messages)
	if err != nil {
		return nil, err
	}
	defer free()
	return readBuffer("rf_chat_tokenize", make([]int32, size/2),
		func(buf unsafe.Pointer, capacity C.size_t, out *C.size_t) C.enum_rf_status {
			return C.rf_chat_tokenize(m.p, base, C.size_t(len(messages)), C.bool(addAssistant),
				C.bool(addSpecial), (*C.int32_t)(buf), capacity, out)
		})
}

// cMessages copies messages into C memory, as cgo requires of an array holding pointers;
// free releases it. size is a first guess of the rendered text's bytes.
func cMessages(op string, messages []ChatMessage) (base *C.rf_chat_message, size int, free func(), err error) {
	// One spare element: calloc(0) may return NULL.
	base = (*C.rf_chat_message)(C.calloc(C.size_t(len(messages)+1), C.sizeof_rf_chat_message))
	if base == nil {
		return nil, 0, nil, &Error{Op: op, Status: ErrOutOfMemory, Msg: "calloc failed"}
	}
	msgs := unsafe.Slice(base, len(messages))
	size = 64
	for i, msg := range messages {
		msgs[i] = C.rf_chat_message{
			role: C.CString(msg.Role), role_len: C.size_t(len(msg.Role)),
			content: C.CString(msg.Content), content_len: C.size_t(len(msg.Content)),
		}
		size += len(msg.Role) + len(msg.Content) + 64
	}
	free = func() {
		for i := range msgs {
			C.free(unsafe.Pointer(msgs[i].role))
			C.free(unsafe.Pointer(msgs[i].content))
		}
		C.free(unsafe.Pointer(base))
	}
	return base, size, free, nil
}
