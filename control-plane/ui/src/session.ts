// Who the token belongs to: `GET /v1/me` says it (the account, the role, the token),
// then the account itself is read for whether it is blocked.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { request, type Account, type Me } from "./api";

export interface Identity {
  token: string;
  account: Pick<Account, "id" | "name" | "is_operator" | "blocked" | "blocked_reason">;
  /** admin, editor or viewer */
  role: string;
  tokenName: string;
  canWrite: boolean;
}

const WRITE_ROLES = new Set(["admin", "editor"]);

export async function resolveIdentity(token: string): Promise<Identity> {
  const me = await request<Me>("GET", "/v1/me", { token });
  // any token reads its own account
  const account = await request<Account>("GET", `/v1/accounts/${me.account_id}`, { token });
  return {
    token,
    account: {
      id: me.account_id,
      name: me.account_name,
      is_operator: me.is_operator,
      blocked: account.blocked,
      blocked_reason: account.blocked_reason,
    },
    role: me.role,
    tokenName: me.token_name,
    canWrite: WRITE_ROLES.has(me.role),
  };
}

export const IdentityContext = createContext<Identity | null>(null);

export function useIdentity(): Identity {
  const identity = useContext(IdentityContext);
  if (!identity) throw new Error("no identity");
  return identity;
}
