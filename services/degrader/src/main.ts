import { runService } from '@sluice/bus';
import { ServiceName } from '@sluice/contracts';
import { startDegrader } from './start.js';

await runService(ServiceName.Degrader, startDegrader);
