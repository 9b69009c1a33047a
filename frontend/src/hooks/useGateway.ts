import { useEffect, useState } from 'react';
import { gatewayReachable, onGatewayStatus } from '../api/client';

export function useGatewayReachable(): boolean {
  const [ok, setOk] = useState(gatewayReachable);
  useEffect(() => onGatewayStatus(setOk), []);
  return ok;
}
