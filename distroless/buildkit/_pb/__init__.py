"""Generated BuildKit protobuf modules (`make proto`; do not edit below this package).

Short aliases for the modules the frontend uses; the generated files keep upstream's
proto paths so descriptor names match BuildKit's.
"""

from .github.com.moby.buildkit.api.types import worker_pb2 as worker
from .github.com.moby.buildkit.frontend.gateway.pb import gateway_pb2 as gateway
from .github.com.moby.buildkit.solver.errdefs import errdefs_pb2 as errdefs
from .github.com.moby.buildkit.solver.pb import ops_pb2 as ops
from .github.com.moby.buildkit.util.apicaps.pb import caps_pb2 as caps
from .github.com.tonistiigi.fsutil.types import stat_pb2 as stat
from .google.rpc import status_pb2 as status

__all__ = ["caps", "errdefs", "gateway", "ops", "stat", "status", "worker"]
