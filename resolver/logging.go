package resolver

import (
	"fmt"

	"google.golang.org/grpc/grpclog"
)

var logger = grpclog.Component("fulcrum-resolver")

// prefixLogger prefixes every line with the instance it comes from, in the
// manner of grpc-go's internal PrefixLogger (which cannot be imported).
type prefixLogger struct {
	prefix string
}

func newPrefixLogger(format string, args ...any) *prefixLogger {
	return &prefixLogger{prefix: fmt.Sprintf(format, args...)}
}

func (l *prefixLogger) Infof(format string, args ...any) {
	logger.InfoDepth(1, l.prefix+fmt.Sprintf(format, args...))
}

func (l *prefixLogger) Warningf(format string, args ...any) {
	logger.WarningDepth(1, l.prefix+fmt.Sprintf(format, args...))
}

func (l *prefixLogger) Errorf(format string, args ...any) {
	logger.ErrorDepth(1, l.prefix+fmt.Sprintf(format, args...))
}

// V reports whether verbosity level v is enabled; per-update detail is
// logged at V(2) only.
func (l *prefixLogger) V(v int) bool { return logger.V(v) }
