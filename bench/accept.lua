-- wrk script for manifest GET by tag: ask for every manifest type a real client accepts
-- (OCI manifest and index, Docker schema2 manifest and manifest list), and print one
-- machine-readable summary line that bench/run.sh parses.
-- BENCH_AUTHORIZATION, when set and not empty, is sent as the Authorization header of
-- every request (bench/run.sh sets it to `Basic <admin access key>` for a Berth that
-- requires authentication); from the environment, so the secret is not in wrk's argv.
wrk.method = "GET"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization ~= nil and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json, "
  .. "application/vnd.oci.image.index.v1+json, "
  .. "application/vnd.docker.distribution.manifest.v2+json, "
  .. "application/vnd.docker.distribution.manifest.list.v2+json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKSUMMARY requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d "
      .. "err_write=%d err_status=%d err_timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
