package main

import "context"

// Temporary until each suite lands (each helper deletes its line).
func runSign(ctx context.Context, o *options) ([]section, error)    { return nil, nil }
func runCLI(ctx context.Context, o *options) ([]section, error)     { return nil, nil }
func runService(ctx context.Context, o *options) ([]section, error) { return nil, nil }
func runKRL(ctx context.Context, o *options) ([]section, error)     { return nil, nil }
