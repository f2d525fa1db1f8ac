// Package metricstest proves Fulcrum's metrics end to end: real servers,
// grpc-go's OpenTelemetry plugin (stats/opentelemetry) and the
// OpenTelemetry SDK's ManualReader. It is a nested module so that the
// OpenTelemetry SDK stays out of the core module's dependencies.
package metricstest
