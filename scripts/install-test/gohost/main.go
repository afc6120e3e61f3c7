// Command gohost is a program outside the repository that uses the Go package against an
// installed librocmforge (scripts/test-install.sh gives it a go.mod with a replace): it
// prints the prompt and its greedy continuation, as c_examples/simple does.
//
//	gohost MODEL.gguf PROMPT MAX_TOKENS
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	rocmforge "github.com/rocmforge/rocmforge/c_examples/go"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gohost MODEL.gguf PROMPT MAX_TOKENS")
		os.Exit(2)
	}
	maxTokens, err := strconv.ParseUint(os.Args[3], 10, 32)
	if err == nil {
		err = run(os.Args[1], os.Args[2], uint32(maxTokens))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohost:", err)
		os.Exit(1)
	}
}

func run(modelPath, prompt string, maxTokens uint32) error {
	opts := rocmforge.DefaultModelOptions()
	opts.Device = rocmforge.DeviceCPU
	model, err := rocmforge.LoadWithOptions(modelPath, opts)
	if err != nil {
		return err
	}
	defer model.Close()
	c, err := rocmforge.NewContext(model, rocmforge.DefaultContextOptions())
	if err != nil {
		return err
	}
	defer c.Close()
	sampler, err := rocmforge.NewGreedySampler()
	if err != nil {
		return err
	}
	defer sampler.Close()

	gen := rocmforge.DefaultGenerateOptions()
	gen.MaxTokens = maxTokens
	fmt.Print(prompt)
	err = rocmforge.Generate(context.Background(), c, sampler, prompt, gen, func(text string) bool {
		fmt.Print(text)
		return true
	})
	fmt.Println()
	return err
}
