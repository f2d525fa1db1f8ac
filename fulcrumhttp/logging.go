package fulcrumhttp

import "google.golang.org/grpc/grpclog"

var logger = grpclog.Component("fulcrum")
