import { runService } from '@sluice/bus';
import { ServiceName } from '@sluice/contracts';
import { startCache } from './start.js';

await runService(ServiceName.Cache, startCache);
