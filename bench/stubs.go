package main

import "context"

func runSmallPackets(ctx context.Context, h *harness) error { return nil }
func runLatency(ctx context.Context, h *harness) error      { return nil }
func runStartup(ctx context.Context, h *harness) error      { return nil }
func runNATScale(ctx context.Context, h *harness) error     { return nil }
func natServer(args []string) error                         { return nil }
func natClient(args []string) error                         { return nil }
func latencyRowName(hops int, q string) string              { return "" }
func startupRowName(n int) string                           { return "" }

const idleRSSRowName = "idle"

func (h *harness) bestPPS(hops int) (float64, int64, bool) { return 0, 0, false }
