package main

import "strings"

// normalizeArgs turns the Python SnowSignal's command-line idioms into ones
// kong parses, so deployed invocations keep working:
//
//   - "-ll LEVEL" (argparse's two-letter short option) becomes "--log-level LEVEL";
//   - "--other-relays A B C" (argparse nargs="+") becomes one
//     "--other-relays=X" per following word, up to the next flag.
func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case a == "-ll":
			out = append(out, "--log-level")
		case strings.HasPrefix(a, "-ll="):
			out = append(out, "--log-level="+strings.TrimPrefix(a, "-ll="))
		case a == "--other-relays":
			j := i + 1
			for ; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
				out = append(out, "--other-relays="+args[j])
			}
			if j == i+1 {
				out = append(out, a) // no value: let kong report it
			}
			i = j - 1
		default:
			out = append(out, a)
		}
	}
	return out
}
