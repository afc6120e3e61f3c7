// Command example streams a greedy completion of a prompt; Ctrl-C cancels it.
//
//	go run ./example -model ../../models/SmolLM2-135M-Instruct.Q4_1.gguf -n 32 "The sky is"
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	rocmforge "github.com/rocmforge/rocmforge/c_examples/go"
)

func main() {
	modelPath := flag.String("model", "", "GGUF model file (required)")
	maxTokens := flag.Uint("n", 48, "most tokens to generate")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s -model FILE [-n N] [PROMPT...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *modelPath == "" {
		flag.Usage()
		os.Exit(2)
	}
	prompt := "The three primary colors are"
	if flag.NArg() > 0 {
		prompt = strings.Join(flag.Args(), " ")
	}
	if err := run(*modelPath, prompt, uint32(*maxTokens)); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(modelPath, prompt string, maxTokens uint32) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	model, err := rocmforge.Load(modelPath)
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

	opts := rocmforge.DefaultGenerateOptions()
	opts.MaxTokens = maxTokens
	fmt.Print(prompt)
	err = rocmforge.Generate(ctx, c, sampler, prompt, opts, func(text string) bool {
		fmt.Print(text)
		return true
	})
	fmt.Println()
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}
